//! App IO: the client of IO's Services API (`POST /profiles`, `POST /messages`) and the
//! delivery of one `io.message` outbox event. A message is composed when it comes due, from
//! the position as it stands (the domain's `io_message::compose`), so nothing stale goes out
//! and nothing at all for a notice paid or cancelled since; the citizen's profile is checked
//! first (404: not on IO; `sender_allowed=false`: the citizen turned the service off), and
//! either way the outcome is recorded for operators (`incasso io messages`).
//!
//! IO's answers: 429, 408 and 5xx (and a connection that fails) may pass and are retried
//! with backoff; 400, 401, 403 and any other 4xx will meet the same refusal again and make
//! the event a dead letter naming the status and IO's reason, which an operator replays once
//! the cause is fixed (`incasso outbox replay`). Reasons never carry the fiscal code.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use incasso_domain::debt_position::DebtKind;
use incasso_domain::fiscal_code::PersonalFiscalCode;
use incasso_domain::io_message::{self, IoMessage};
use incasso_domain::notice_number::NoticeNumber;
use incasso_store::io_messages::{IoMessageEvent, IoOutcome};
use incasso_store::outbox::ClaimedEvent;
use incasso_store::{AppError, Store};

use crate::{Claimed, Lease, Outcome, Policy, Publisher, Relay};

/// One IO service: the key of (creditor, kind).
#[derive(Clone, PartialEq, Eq)]
pub struct IoService {
    /// The creditor (11 digits).
    pub creditor: String,
    /// The kind of its positions this service writes about.
    pub kind: DebtKind,
    /// The service's API key (`Ocp-Apim-Subscription-Key`).
    pub subscription_key: String,
    /// Whether messages are on.
    pub enabled: bool,
    /// Days before a due date the reminder goes out (0: none).
    pub reminder_days: u16,
}

impl std::fmt::Debug for IoService {
    // The key is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoService")
            .field("creditor", &self.creditor)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
            .field("reminder_days", &self.reminder_days)
            .finish_non_exhaustive()
    }
}

/// How incasso reaches App IO.
#[derive(Debug, Clone)]
pub struct IoConfig {
    /// Base URL, e.g. `https://api.io.pagopa.it/api/v1`.
    pub base_url: String,
    /// The services, one per (creditor, kind).
    pub services: Vec<IoService>,
    /// How often the relay looks for due messages.
    pub poll_interval: Duration,
    /// Messages claimed per round and sent concurrently (each of another position).
    pub batch: u64,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Attempts before a message is a dead letter (IO's own retries last up to 7 days).
    pub max_attempts: i32,
    /// Per-request timeout; the lease on an event is three of these.
    pub request_timeout: Duration,
    /// The CA and client certificate of the HTTPS calls.
    pub tls: crate::outbound_tls::OutboundTls,
}

impl IoConfig {
    /// Production defaults for `base_url`.
    pub fn new(base_url: &str, services: Vec<IoService>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            services,
            poll_interval: Duration::from_secs(2),
            batch: 20,
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            max_attempts: 20,
            request_timeout: Duration::from_secs(10),
            tls: crate::outbound_tls::OutboundTls::default(),
        }
    }

    /// The store's scheduling: the enabled services and their reminder days.
    pub fn scheduling(&self) -> incasso_store::io_messages::IoScheduling {
        let mut scheduling = incasso_store::io_messages::IoScheduling::default();
        for service in self.services.iter().filter(|s| s.enabled) {
            scheduling.enable(&service.creditor, service.kind, service.reminder_days);
        }
        scheduling
    }

    /// How long a claim or a renewal holds an event.
    pub fn lease(&self) -> Duration {
        self.request_timeout.saturating_mul(3)
    }

    /// The relay policy: `batch` messages a round, backoff from `retry_base` to
    /// `retry_max`, dead after `max_attempts`.
    pub fn policy(&self) -> Policy {
        Policy {
            // Not urgent: a message goes out within a poll of its notice, and a change made
            // in that time is what the message says.
            wake_on_commit: false,
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

/// Why a call to IO failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IoCallError {
    /// It may pass: 429, 408, 5xx, a timeout, no connection.
    #[error("{0}")]
    Transient(String),
    /// The same call will be refused again: 400, 401, 403, another 4xx.
    #[error("{0}")]
    Refused(String),
}

/// What the profile check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileCheck {
    /// On IO and the service may write.
    Allowed,
    /// Not on IO (404).
    NotOnIo,
    /// On IO, the citizen turned the service off.
    SenderNotAllowed,
}

#[derive(Serialize)]
struct ProfileRequest<'a> {
    fiscal_code: &'a str,
}

#[derive(Deserialize)]
struct LimitedProfile {
    sender_allowed: bool,
}

#[derive(Serialize)]
struct NewMessage<'a> {
    fiscal_code: &'a str,
    content: MessageContent<'a>,
}

#[derive(Serialize)]
struct MessageContent<'a> {
    subject: &'a str,
    markdown: &'a str,
    due_date: String,
    payment_data: PaymentData<'a>,
}

/// No `payee`: IO takes the sending service's organisation as the creditor, which is the
/// notice's creditor (one service per creditor); with a payee IO asks for a permission
/// group the services do not have.
#[derive(Serialize)]
struct PaymentData<'a> {
    amount: i64,
    notice_number: &'a str,
    invalid_after_due_date: bool,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

const DUE_DATE: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");

/// The JSON body of `POST /messages` for `message`.
pub fn message_body(message: &IoMessage) -> serde_json::Value {
    let due_date = message
        .due_date
        .format(DUE_DATE)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned());
    serde_json::to_value(NewMessage {
        fiscal_code: message.fiscal_code.as_str(),
        content: MessageContent {
            subject: &message.subject,
            markdown: &message.markdown,
            due_date,
            payment_data: PaymentData {
                amount: message.amount.get(),
                notice_number: message.notice_number.as_str(),
                invalid_after_due_date: message.invalid_after_due_date,
            },
        },
    })
    .unwrap_or_default()
}

/// The client of IO's Services API.
#[derive(Debug, Clone)]
pub struct IoClient {
    http: reqwest::Client,
    base_url: String,
}

impl IoClient {
    /// A client of `base_url` whose calls give up after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Self::with_tls(
            base_url,
            timeout,
            &crate::outbound_tls::OutboundTls::default(),
        )
    }

    /// A client of `base_url` with the outbound TLS settings `tls`.
    pub fn with_tls(
        base_url: &str,
        timeout: Duration,
        tls: &crate::outbound_tls::OutboundTls,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: tls.reqwest()?.timeout(timeout).build()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST /profiles`: may the service write to the citizen?
    pub async fn check_profile(
        &self,
        key: &str,
        fiscal_code: &PersonalFiscalCode,
    ) -> Result<ProfileCheck, IoCallError> {
        let response = self
            .http
            .post(format!("{}/profiles", self.base_url))
            .headers(incasso_telemetry::propagation::current_headers())
            .header("Ocp-Apim-Subscription-Key", key)
            .json(&ProfileRequest {
                fiscal_code: fiscal_code.as_str(),
            })
            .send()
            .await
            .map_err(|e| IoCallError::Transient(format!("IO unreachable: {}", without_url(&e))))?;
        let status = response.status().as_u16();
        match status {
            200 => {
                let profile: LimitedProfile = response.json().await.map_err(|_| {
                    IoCallError::Transient("IO answered a profile without sender_allowed".into())
                })?;
                Ok(if profile.sender_allowed {
                    ProfileCheck::Allowed
                } else {
                    ProfileCheck::SenderNotAllowed
                })
            }
            404 => Ok(ProfileCheck::NotOnIo),
            _ => Err(refusal("profile check", status, response, fiscal_code).await),
        }
    }

    /// `POST /messages`: IO's id of the accepted message.
    pub async fn submit(&self, key: &str, message: &IoMessage) -> Result<String, IoCallError> {
        let response = self
            .http
            .post(format!("{}/messages", self.base_url))
            .headers(incasso_telemetry::propagation::current_headers())
            .header("Ocp-Apim-Subscription-Key", key)
            .json(&message_body(message))
            .send()
            .await
            .map_err(|e| IoCallError::Transient(format!("IO unreachable: {}", without_url(&e))))?;
        let status = response.status().as_u16();
        if status == 201 {
            let created: Created = response.json().await.map_err(|_| {
                IoCallError::Transient("IO accepted the message without an id".into())
            })?;
            return Ok(created.id);
        }
        Err(refusal("message", status, response, &message.fiscal_code).await)
    }
}

/// A reqwest error without the URL (which is ours, and harmless, but long).
fn without_url(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// The error of a non-success answer: transient or final by status, with IO's reason
/// (ProblemJson `title`/`detail`), the fiscal code taken out if IO repeated it.
async fn refusal(
    call: &str,
    status: u16,
    response: reqwest::Response,
    fiscal_code: &PersonalFiscalCode,
) -> IoCallError {
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let reason = [body["title"].as_str(), body["detail"].as_str()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ")
        .replace(fiscal_code.as_str(), "[fiscal code]");
    let reason: String = reason.chars().take(500).collect();
    let text = format!("IO answered {status} to the {call}: {reason}");
    match status {
        408 | 429 | 500..=599 => IoCallError::Transient(text),
        _ => IoCallError::Refused(text),
    }
}

/// What became of one event's delivery, for the relay to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Done: sent, or not to be sent (the reason is recorded).
    Done,
    /// May pass: retry with backoff.
    Retry(String),
    /// Will not pass: dead letter.
    Dead(String),
    /// Another relay holds the event now.
    LeaseLost,
}

/// Delivers `io.message` events: composes each message from the position's current state,
/// checks the profile, sends, records the outcome.
#[derive(Debug, Clone)]
pub struct IoPublisher {
    store: Store,
    client: IoClient,
    keys: HashMap<(String, DebtKind), IoService>,
    policy: Policy,
}

impl IoPublisher {
    /// A publisher for `store`'s `io.message` events.
    pub fn new(store: Store, config: &IoConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            store,
            client: IoClient::with_tls(&config.base_url, config.request_timeout, &config.tls)?,
            keys: config
                .services
                .iter()
                .map(|s| ((s.creditor.clone(), s.kind), s.clone()))
                .collect(),
            policy: config.policy(),
        })
    }

    async fn renew(&self, lease: &Lease, event: &ClaimedEvent) -> Result<(), Delivery> {
        match lease.renew(event).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Delivery::LeaseLost),
            Err(error) => Err(Delivery::Retry(error.to_string())),
        }
    }

    async fn record(
        &self,
        claimed: &ClaimedEvent,
        event: &IoMessageEvent,
        outcome: IoOutcome,
    ) -> Delivery {
        match self
            .store
            .record_io_outcome(claimed.id, event, &outcome)
            .await
        {
            Ok(()) => Delivery::Done,
            Err(error) => Delivery::Retry(error.to_string()),
        }
    }

    /// Delivers one claimed event whose payload is `event`.
    pub async fn deliver(
        &self,
        lease: &Lease,
        claimed: &ClaimedEvent,
        event: &IoMessageEvent,
    ) -> Delivery {
        match self.try_deliver(lease, claimed, event).await {
            Ok(delivery) | Err(delivery) => delivery,
        }
    }

    async fn try_deliver(
        &self,
        lease: &Lease,
        claimed: &ClaimedEvent,
        event: &IoMessageEvent,
    ) -> Result<Delivery, Delivery> {
        // Sent already, and the crash came before the event was marked: not again.
        match self.store.io_outcome_of(claimed.id).await {
            Ok(Some(_)) => return Ok(Delivery::Done),
            Ok(None) => {}
            Err(error) => return Err(Delivery::Retry(error.to_string())),
        }
        let position = match self
            .store
            .get_debt_position(&event.debt_position_id.to_string())
            .await
        {
            Ok(position) => position,
            Err(AppError::NotFound { .. }) => {
                let reason = IoOutcome::NotSent("the position no longer exists".into());
                return Ok(self.record(claimed, event, reason).await);
            }
            Err(error) => return Err(Delivery::Retry(error.to_string())),
        };
        let service = self
            .keys
            .get(&(position.creditor.as_str().to_owned(), position.kind()))
            .filter(|s| s.enabled);
        let Some(service) = service else {
            let reason = IoOutcome::NotSent(format!(
                "IO messages are off for {} {}",
                position.creditor.as_str(),
                position.kind().as_str()
            ));
            return Ok(self.record(claimed, event, reason).await);
        };
        let Ok(notice) = NoticeNumber::parse(&event.notice_number) else {
            return Err(Delivery::Dead(
                "the event names no valid notice number".into(),
            ));
        };
        let creditor_name = self
            .store
            .registry()
            .get(position.creditor.as_str())
            .map_or_else(
                || position.creditor.as_str().to_owned(),
                |c| c.name().to_owned(),
            );
        let message = match io_message::compose(
            &position,
            &notice,
            event.purpose,
            event.when,
            service.reminder_days,
            &creditor_name,
            self.store.now(),
        ) {
            Ok(message) => message,
            Err(not_sent) => {
                tracing::info!(notice = %notice, purpose = event.purpose.as_str(), reason = %not_sent, "IO message not sent");
                let reason = IoOutcome::NotSent(not_sent.to_string());
                return Ok(self.record(claimed, event, reason).await);
            }
        };
        self.renew(lease, claimed).await?;
        let key = &service.subscription_key;
        match self.client.check_profile(key, &message.fiscal_code).await {
            Ok(ProfileCheck::Allowed) => {}
            Ok(ProfileCheck::NotOnIo) => {
                tracing::info!(notice = %notice, "IO message not sent: the citizen is not on IO");
                return Ok(self.record(claimed, event, IoOutcome::NotOnIo).await);
            }
            Ok(ProfileCheck::SenderNotAllowed) => {
                tracing::info!(notice = %notice, "IO message not sent: the citizen turned the service off");
                return Ok(self
                    .record(claimed, event, IoOutcome::SenderNotAllowed)
                    .await);
            }
            Err(IoCallError::Transient(error)) => return Err(Delivery::Retry(error)),
            Err(IoCallError::Refused(error)) => return Err(Delivery::Dead(error)),
        }
        self.renew(lease, claimed).await?;
        match self.client.submit(key, &message).await {
            Ok(io_message_id) => {
                tracing::info!(notice = %notice, purpose = event.purpose.as_str(), %io_message_id, "IO message sent");
                Ok(self
                    .record(claimed, event, IoOutcome::Sent { io_message_id })
                    .await)
            }
            Err(IoCallError::Transient(error)) => Err(Delivery::Retry(error)),
            Err(IoCallError::Refused(error)) => Err(Delivery::Dead(error)),
        }
    }
}

impl Publisher for IoPublisher {
    type Event = IoMessageEvent;

    fn name(&self) -> &'static str {
        "App IO"
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    async fn publish(
        &self,
        lease: &Lease,
        batch: &[Claimed<IoMessageEvent>],
    ) -> Vec<Outcome<IoMessageEvent>> {
        // Each event is another position's: delivered concurrently.
        let deliveries = batch.iter().map(|claimed| async move {
            match self.deliver(lease, &claimed.event, &claimed.payload).await {
                Delivery::Done => Outcome::Delivered(None),
                Delivery::Retry(error) => Outcome::Retry(error),
                Delivery::Dead(error) => Outcome::Dead(error),
                Delivery::LeaseLost => Outcome::LeaseLost,
            }
        });
        futures::future::join_all(deliveries).await
    }
}

/// The App IO relay: the generic relay with the [`IoPublisher`].
#[derive(Debug, Clone)]
pub struct IoRelay {
    relay: Relay<IoPublisher>,
}

impl IoRelay {
    /// A relay of `store`'s `io.message` events.
    pub fn new(store: Store, config: IoConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            relay: Relay::new(store.clone(), IoPublisher::new(store, &config)?),
        })
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        self.relay.run(shutdown).await;
    }

    /// Claims one batch of due messages and delivers them; returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, AppError> {
        self.relay.run_once().await
    }
}
