//! The outbox relay: one loop that claims due events of a topic under a lease, hands them to
//! that topic's [`Publisher`], and records what the publisher decided for each (delivered,
//! retried with backoff, dead letter, or resent from an earlier place in its aggregate's
//! queue), always under the claim's lease token, so a relay that stalled past its lease and
//! was taken over changes nothing. Each downstream is one publisher with its own topic,
//! ordering key (the outbox's aggregate id), batch size and retry [`Policy`]: [`aca`] keeps
//! PagoPA's Stand-In archive current, [`fascicolo`] the Fascicolo del Cittadino.
//!
//! What the relay guarantees comes from the store's claim (`Store::claim_outbox`): only the
//! first pending event of each aggregate is claimable, and none while another of the
//! aggregate's events is leased, so one aggregate is never in flight twice nor out of order;
//! PostgreSQL claims skip rows other replicas hold (`FOR UPDATE SKIP LOCKED`).

pub mod aca;
pub mod app_io;
pub mod fascicolo;
pub mod outbound_tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;
use tracing::Instrument;

use incasso_store::outbox::{ClaimedEvent, FollowUp, Rewind, TopicEvent, retry_delay_ms};
use incasso_store::{AppError, Store};

/// How a publisher's events are claimed and retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How often an idle relay looks for due events.
    pub poll_interval: Duration,
    /// Events claimed per round (each of another aggregate).
    pub batch: u64,
    /// Rounds one relay runs at the same time (claims never overlap: each takes other rows).
    pub workers: usize,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay (before jitter of ±50%).
    pub retry_max: Duration,
    /// Attempts before a failing event is dead; `None` retries for ever.
    pub max_attempts: Option<i32>,
    /// How long a claim or a renewal holds an event: longer than any one call the publisher
    /// makes, renewed before each call.
    pub lease: Duration,
    /// Whether a waiting relay claims as soon as its own replica commits outbox events,
    /// rather than at its next poll: for receivers where the lag is what the user sees.
    pub wake_on_commit: bool,
}

impl Policy {
    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// The delay before the next attempt of an event that failed its `attempts`-th.
    fn retry_delay_ms(&self, attempts: i32) -> u64 {
        let jitter = rand::rng().random_range(500..1500);
        let base = u64::try_from(self.retry_base.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.retry_max.as_millis()).unwrap_or(u64::MAX);
        retry_delay_ms(attempts, base, max, jitter)
    }
}

/// A claimed event with its payload read.
#[derive(Debug, Clone)]
pub struct Claimed<E> {
    /// The event as claimed (id, aggregate, attempts, lease).
    pub event: ClaimedEvent,
    /// Its payload.
    pub payload: E,
}

/// What a publisher decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<E> {
    /// Delivered; optionally queue `E` for the same aggregate, due at the instant given.
    Delivered(Option<(OffsetDateTime, E)>),
    /// Failed in a way that may pass: retried with backoff (dead after too many attempts).
    Retry(String),
    /// Refused in a way retrying cannot fix: dead letter, for an operator.
    Dead(String),
    /// The receiver lacks the aggregate's events from this place in the queue on: resend them,
    /// then this one.
    Resend {
        /// The place (`ClaimedEvent::order`) the receiver expects next.
        from: i64,
    },
    /// The lease was lost before delivery: not this relay's to record.
    LeaseLost,
}

/// One downstream system: how its events are delivered.
pub trait Publisher: Send + Sync + 'static {
    /// The payload type of the topic it delivers.
    type Event: TopicEvent + Clone;

    /// Its name in logs (`ACA`, `Fascicolo`).
    fn name(&self) -> &'static str;

    /// How its events are claimed and retried.
    fn policy(&self) -> &Policy;

    /// Delivers `batch` (each of another aggregate) and says what became of each, in order.
    /// Before each call to the remote system the publisher renews the leases of the events
    /// the call carries through `lease`, and leaves out those it no longer holds.
    fn publish(
        &self,
        lease: &Lease,
        batch: &[Claimed<Self::Event>],
    ) -> impl Future<Output = Vec<Outcome<Self::Event>>> + Send;
}

/// The outcome's name in the delivery metrics.
fn outcome_name<E>(outcome: &Outcome<E>) -> &'static str {
    match outcome {
        Outcome::Delivered(_) => "delivered",
        Outcome::Retry(_) => "retry",
        Outcome::Dead(_) => "dead",
        Outcome::Resend { .. } => "resend",
        Outcome::LeaseLost => "lease_lost",
    }
}

/// Renews the leases of a claim.
#[derive(Debug, Clone)]
pub struct Lease {
    store: Store,
    lease_ms: u64,
}

impl Lease {
    /// Extends the lease on `event`; false when another relay holds it now.
    pub async fn renew(&self, event: &ClaimedEvent) -> Result<bool, AppError> {
        self.store.outbox_renew(event, self.lease_ms).await
    }

    /// Extends the leases on `events` (of one claim) in one statement; the ids still held.
    pub async fn renew_all(
        &self,
        events: &[ClaimedEvent],
    ) -> Result<std::collections::HashSet<uuid::Uuid>, AppError> {
        self.store.outbox_renew_many(events, self.lease_ms).await
    }
}

/// The relay of one publisher's topic.
#[derive(Debug)]
pub struct Relay<P> {
    store: Store,
    publisher: Arc<P>,
}

impl<P> Clone for Relay<P> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            publisher: Arc::clone(&self.publisher),
        }
    }
}

impl<P: Publisher> Relay<P> {
    /// A relay delivering `store`'s outbox events of `publisher`'s topic.
    pub fn new(store: Store, publisher: P) -> Self {
        Self {
            store,
            publisher: Arc::new(publisher),
        }
    }

    /// The publisher.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// Runs `policy.workers` rounds at a time until `shutdown` resolves; a round in flight
    /// finishes first.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let name = self.publisher.name();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.publisher.policy().workers.max(1) {
            let relay = self.clone();
            let mut stopped = stopped.clone();
            workers.spawn(async move {
                relay
                    .run_worker(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await;
            });
        }
        tracing::info!(
            topic = P::Event::TOPIC,
            workers = workers.len(),
            "{name} relay started"
        );
        shutdown.await;
        let _ = stop.send(true);
        while workers.join_next().await.is_some() {}
        tracing::info!(topic = P::Event::TOPIC, "{name} relay stopped");
    }

    async fn run_worker(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let policy = self.publisher.policy().clone();
        let mut queued = self.store.outbox_queued_signal();
        let wake_on_commit = policy.wake_on_commit;
        loop {
            // What was queued before this round is this round's to claim.
            queued.borrow_and_update();
            let pause = match self.run_once().await {
                Ok(0) => policy.poll_interval,
                Ok(n) => {
                    tracing::debug!(topic = P::Event::TOPIC, events = n, "outbox events handled");
                    // A full batch means more are probably due: no pause.
                    if u64::try_from(n).unwrap_or(u64::MAX) >= policy.batch {
                        Duration::ZERO
                    } else {
                        policy.poll_interval
                    }
                }
                Err(error) => {
                    tracing::warn!(topic = P::Event::TOPIC, %error, "relay round failed");
                    policy.poll_interval
                }
            };
            // Events queued in this process during the round (a receipt, a notice) end the
            // pause at once: their lag is not a poll interval. A retry's backoff is the
            // events' own `next_attempt_at`, so waking early claims only what is due.
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
                Ok(()) = queued.changed(), if wake_on_commit => {}
            }
        }
    }

    /// Claims one batch of due events, has the publisher deliver it and records each
    /// outcome; returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, AppError> {
        let policy = self.publisher.policy();
        let events = self
            .store
            .claim_outbox(P::Event::TOPIC, policy.batch, policy.lease_ms())
            .await?;
        let count = events.len();
        if count == 0 {
            return Ok(0);
        }
        let mut batch = Vec::with_capacity(count);
        let mut unreadable = Vec::new();
        for event in events {
            match serde_json::from_str::<P::Event>(&event.payload) {
                Ok(payload) => batch.push(Claimed { event, payload }),
                Err(error) => unreadable.push((event, format!("bad event payload: {error}"))),
            }
        }
        let lease = Lease {
            store: self.store.clone(),
            lease_ms: policy.lease_ms(),
        };
        let outcomes = if batch.is_empty() {
            Vec::new()
        } else {
            // One span per delivery round, the parent of the calls it makes (and of the trace
            // context they carry to the receiver).
            let span = tracing::info_span!(
                "relay.deliver",
                topic = P::Event::TOPIC,
                receiver = self.publisher.name(),
                events = batch.len(),
            );
            self.publisher
                .publish(&lease, &batch)
                .instrument(span)
                .await
        };
        if outcomes.len() != batch.len() {
            return Err(AppError::Internal(format!(
                "{} publisher answered {} outcomes for {} events",
                self.publisher.name(),
                outcomes.len(),
                batch.len()
            )));
        }
        let mut delivered = Vec::new();
        let mut result = Ok(count);
        for (event, error) in unreadable {
            incasso_telemetry::metrics().delivery(P::Event::TOPIC, "dead");
            if let Err(e) = self.record(&event, Outcome::Dead(error)).await {
                result = Err(e);
            }
        }
        // A receiver that is down fails a whole round: one warning for the round, not one per
        // event (each event's retry is logged at debug).
        let mut retried: Option<(usize, String)> = None;
        for (claimed, outcome) in batch.into_iter().zip(outcomes) {
            incasso_telemetry::metrics().delivery(P::Event::TOPIC, outcome_name(&outcome));
            if matches!(outcome, Outcome::Delivered(None)) {
                delivered.push(claimed.event);
                continue;
            }
            if let Outcome::Retry(error) = &outcome {
                match &mut retried {
                    Some((count, _)) => *count += 1,
                    None => retried = Some((1, error.clone())),
                }
            }
            if let Err(e) = self.record(&claimed.event, outcome).await {
                result = Err(e);
            }
        }
        if let Some((events, first_error)) = retried {
            tracing::warn!(
                topic = P::Event::TOPIC,
                events,
                error = %first_error,
                "{} delivery failed: will retry with backoff",
                self.publisher.name()
            );
        }
        let marked = self.store.outbox_delivered_many(&delivered).await?;
        let lost = u64::try_from(delivered.len())
            .unwrap_or(u64::MAX)
            .saturating_sub(marked);
        if lost > 0 {
            tracing::warn!(
                topic = P::Event::TOPIC,
                events = lost,
                "delivered events' leases lost to another relay: outcome not recorded"
            );
        }
        result
    }

    /// Records one outcome other than a plain delivery under the event's lease.
    async fn record(
        &self,
        event: &ClaimedEvent,
        outcome: Outcome<P::Event>,
    ) -> Result<(), AppError> {
        let name = self.publisher.name();
        let policy = self.publisher.policy();
        let recorded = match outcome {
            Outcome::Delivered(follow_up) => {
                let follow_up = match follow_up {
                    Some((due, payload)) => Some(FollowUp {
                        due,
                        payload: serde_json::to_string(&payload)
                            .map_err(|e| AppError::Internal(e.to_string()))?,
                    }),
                    None => None,
                };
                self.store.outbox_delivered(event, follow_up).await?
            }
            Outcome::LeaseLost => false,
            Outcome::Dead(error) => {
                tracing::error!(event = %event.id, %error, "{name} refused the event: dead letter");
                self.store.outbox_failed(event, &error, None).await?
            }
            Outcome::Retry(error)
                if policy.max_attempts.is_some_and(|max| event.attempts >= max) =>
            {
                tracing::error!(event = %event.id, attempts = event.attempts, %error, "{name} unreachable too long: dead letter");
                self.store.outbox_failed(event, &error, None).await?
            }
            Outcome::Retry(error) => {
                let delay = policy.retry_delay_ms(event.attempts);
                tracing::debug!(event = %event.id, attempts = event.attempts, delay_ms = delay, %error, "{name} delivery failed: will retry");
                self.store.outbox_failed(event, &error, Some(delay)).await?
            }
            Outcome::Resend { from } => match self.store.outbox_rewind(event, from).await? {
                Rewind::Requeued(n) => {
                    tracing::info!(event = %event.id, from, requeued = n, "{name} asked to resend: queued again in order");
                    true
                }
                Rewind::LeaseLost => false,
                Rewind::Missing => {
                    let error = format!(
                        "{name} expects place {from} of this queue, which incasso does not have"
                    );
                    tracing::error!(event = %event.id, %error, "dead letter");
                    self.store.outbox_failed(event, &error, None).await?
                }
                Rewind::Dead => {
                    let error = format!(
                        "{name} expects place {from} of this queue first, a dead letter: replay it"
                    );
                    tracing::error!(event = %event.id, %error, "dead letter");
                    self.store.outbox_failed(event, &error, None).await?
                }
            },
        };
        if !recorded {
            tracing::warn!(event = %event.id, "{name} event lease lost to another relay: outcome not recorded");
        }
        Ok(())
    }
}
