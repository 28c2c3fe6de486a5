//! The Fascicolo del Cittadino's publisher: delivers `fascicolo.citizen` events with
//! `fascicolo.v1.PaymentHistoryService/PushEvents`, incasso being the client of the contract
//! it defines (`proto/fascicolo/v1`). One citizen is one aggregate of the outbox, queued in
//! `citizen_sequence` order, so a citizen's events go one at a time and in order while other
//! citizens' go together, up to 500 in one call.
//!
//! Answers: an accepted event is delivered; a `ResendFrom` for a citizen queues the citizen's
//! events again from the sequence the Fascicolo expects; UNAVAILABLE, DEADLINE_EXCEEDED,
//! RESOURCE_EXHAUSTED (and other transient statuses) retry the batch with capped backoff,
//! never giving up, so the relay resumes within one capped delay of the Fascicolo answering
//! again; INVALID_ARGUMENT for a batch of several events is retried one event per call, so
//! only the events it refuses become dead letters, as every PERMISSION_DENIED does. The
//! Fascicolo's error texts are stored and logged with the batch's fiscal codes blanked out.

mod message;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use incasso_store::Store;
use incasso_store::citizens::CitizenEvent;

use crate::{Claimed, Lease, Outcome, Policy, Publisher, Relay};

pub mod pb {
    //! Code generated from `proto/fascicolo/v1`: incasso's client and the server trait a
    //! Fascicolo (or the tests' fake) implements.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("fascicolo.v1");
}

/// The most events one `PushEvents` call carries (the contract's limit).
pub const MAX_BATCH: u64 = 500;

/// How the relay reaches the Fascicolo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FascicoloConfig {
    /// The Fascicolo's gRPC endpoint, e.g. `http://127.0.0.1:7000`.
    pub url: String,
    /// How often an idle relay looks for due events.
    pub poll_interval: Duration,
    /// Events per call, at most [`MAX_BATCH`].
    pub batch: u64,
    /// Calls one relay has in flight at once (each with other citizens).
    pub workers: usize,
    /// First retry delay after a transient failure.
    pub retry_base: Duration,
    /// Longest retry delay (jitter of ±50% around it): after an outage, the relay resumes
    /// within 1.5 times this of the Fascicolo answering again.
    pub retry_max: Duration,
    /// Per-call timeout, connection included; the lease on a batch is three of these.
    pub request_timeout: Duration,
    /// The CA and client certificate, for an `https://` URL.
    pub tls: crate::outbound_tls::OutboundTls,
}

impl FascicoloConfig {
    /// Production defaults for `url`: batches of 500, two in flight, backoff from 1 s capped
    /// at 30 s (so the relay resumes within 45 s of the Fascicolo answering again).
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            poll_interval: Duration::from_millis(250),
            batch: MAX_BATCH,
            workers: 2,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            tls: crate::outbound_tls::OutboundTls::default(),
        }
    }

    /// The relay policy these settings make.
    pub fn policy(&self) -> Policy {
        Policy {
            // A payment shows in the Fascicolo as soon as it is booked.
            wake_on_commit: true,
            poll_interval: self.poll_interval,
            batch: self.batch.clamp(1, MAX_BATCH),
            workers: self.workers.max(1),
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            // A citizen's history must not lose an event to a long outage.
            max_attempts: None,
            lease: self.request_timeout.saturating_mul(3),
        }
    }
}

/// Why the relay cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum FascicoloError {
    /// The URL is not a gRPC endpoint.
    #[error("fascicolo.url: not a valid URL ({0})")]
    InvalidUrl(String),
}

/// The Fascicolo's publisher.
#[derive(Debug)]
pub struct FascicoloPublisher {
    store: Store,
    client: pb::payment_history_service_client::PaymentHistoryServiceClient<Channel>,
    policy: Policy,
}

/// The Fascicolo relay.
pub type FascicoloRelay = Relay<FascicoloPublisher>;

/// A relay delivering `store`'s citizen events to the Fascicolo at `config.url`. It connects
/// lazily: a Fascicolo that is down at start is retried like any outage.
pub fn relay(store: Store, config: &FascicoloConfig) -> Result<FascicoloRelay, FascicoloError> {
    let endpoint = Endpoint::from_shared(config.url.clone())
        .map_err(|e| FascicoloError::InvalidUrl(e.to_string()))?
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout)
        .tcp_nodelay(true);
    let endpoint = if config.url.starts_with("https://") {
        endpoint
            .tls_config(config.tls.tonic())
            .map_err(|e| FascicoloError::InvalidUrl(e.to_string()))?
    } else {
        endpoint
    };
    let client = pb::payment_history_service_client::PaymentHistoryServiceClient::new(
        endpoint.connect_lazy(),
    );
    tracing::info!(url = %config.url, "Fascicolo relay configured");
    Ok(Relay::new(
        store.clone(),
        FascicoloPublisher {
            store,
            client,
            policy: config.policy(),
        },
    ))
}

/// What a status from the Fascicolo means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Retrying may help.
    Transient,
    /// The same request will be refused again.
    Permanent,
}

/// The verdict on a failed call. The contract names UNAVAILABLE, DEADLINE_EXCEEDED and
/// RESOURCE_EXHAUSTED as passing and INVALID_ARGUMENT and PERMISSION_DENIED as final; of
/// the rest, a set-up fault (UNAUTHENTICATED, UNIMPLEMENTED, NOT_FOUND, FAILED_PRECONDITION)
/// is final and anything else (a cancelled or aborted call, an internal error, a transport
/// failure) passing.
pub fn verdict(code: Code) -> Verdict {
    match code {
        Code::InvalidArgument
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented
        | Code::NotFound
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::AlreadyExists => Verdict::Permanent,
        _ => Verdict::Transient,
    }
}

/// `text` with every fiscal code of `codes` blanked out: the Fascicolo's error messages may
/// quote the event they refuse, and they are stored and logged.
fn redact(text: &str, codes: &[&str]) -> String {
    let mut text: String = text.chars().take(500).collect();
    for code in codes {
        if !code.is_empty() {
            text = text.replace(code, "[citizen]");
        }
    }
    text
}

impl FascicoloPublisher {
    /// Loads the positions and receipts the batch names.
    async fn sources(
        &self,
        batch: &[Claimed<CitizenEvent>],
    ) -> Result<message::Sources, incasso_store::AppError> {
        let (mut position_ids, receipt_ids) = message::wanted(batch);
        let receipts = self.store.citizen_receipts(&receipt_ids).await?;
        position_ids.extend(receipts.iter().filter_map(|r| r.debt_position_id));
        position_ids.sort_unstable();
        position_ids.dedup();
        let positions = self.store.positions_by_id(&position_ids).await?;
        Ok(message::Sources {
            positions: positions.into_iter().map(|p| (p.id, p)).collect(),
            receipts: receipts.into_iter().map(|r| (r.id, r)).collect(),
        })
    }

    /// One PushEvents call with `events` (batch indexes and messages); records each
    /// event's outcome.
    async fn push(
        &self,
        outcomes: &mut [Option<Outcome<CitizenEvent>>],
        events: Vec<(usize, pb::CitizenEvent)>,
    ) -> Result<(), tonic::Status> {
        let request = pb::PushEventsRequest {
            events: events.iter().map(|(_, e)| e.clone()).collect(),
        };
        let mut request = tonic::Request::new(request);
        incasso_telemetry::propagation::inject_into_metadata(request.metadata_mut());
        let response = self.client.clone().push_events(request).await?.into_inner();
        let accepted: HashSet<&str> = response
            .accepted_event_ids
            .iter()
            .map(String::as_str)
            .collect();
        let resend: HashMap<&str, u64> = response
            .resend_from
            .iter()
            .map(|r| (r.citizen_fiscal_code.as_str(), r.next_sequence))
            .collect();
        for (index, event) in events {
            let sequence = event.citizen_sequence;
            outcomes[index] = Some(if accepted.contains(event.event_id.as_str()) {
                Outcome::Delivered(None)
            } else {
                match resend.get(event.citizen_fiscal_code.as_str()) {
                    // It already has this one.
                    Some(&next) if next > sequence => Outcome::Delivered(None),
                    Some(&next) if next < sequence => Outcome::Resend {
                        from: i64::try_from(next).unwrap_or(i64::MAX),
                    },
                    Some(_) => Outcome::Retry(
                        "the Fascicolo expects this event next but did not accept it".into(),
                    ),
                    None => Outcome::Retry("the Fascicolo did not accept the event".into()),
                }
            });
        }
        Ok(())
    }

    /// What a failed call means for each of `events`.
    fn failed(
        outcomes: &mut [Option<Outcome<CitizenEvent>>],
        events: &[(usize, pb::CitizenEvent)],
        status: &tonic::Status,
    ) {
        let codes: Vec<&str> = events
            .iter()
            .map(|(_, e)| e.citizen_fiscal_code.as_str())
            .collect();
        let error = format!(
            "Fascicolo answered {:?}: {}",
            status.code(),
            redact(status.message(), &codes)
        );
        for (index, _) in events {
            outcomes[*index] = Some(match verdict(status.code()) {
                Verdict::Transient => Outcome::Retry(error.clone()),
                Verdict::Permanent => Outcome::Dead(error.clone()),
            });
        }
    }
}

impl Publisher for FascicoloPublisher {
    type Event = CitizenEvent;

    fn name(&self) -> &'static str {
        "Fascicolo"
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    async fn publish(
        &self,
        lease: &Lease,
        batch: &[Claimed<CitizenEvent>],
    ) -> Vec<Outcome<CitizenEvent>> {
        let mut outcomes: Vec<Option<Outcome<CitizenEvent>>> = vec![None; batch.len()];
        let sources = match self.sources(batch).await {
            Ok(sources) => sources,
            Err(error) => {
                return batch
                    .iter()
                    .map(|_| Outcome::Retry(format!("reading the events' state: {error}")))
                    .collect();
            }
        };
        let context = message::Context {
            registry: self.store.registry(),
            keys: self.store.keys(),
            today: self.store.today(),
        };
        let mut events = Vec::with_capacity(batch.len());
        for (index, claimed) in batch.iter().enumerate() {
            match message::build(&context, &sources, claimed) {
                Ok(event) => events.push((index, event)),
                Err(reason) => outcomes[index] = Some(Outcome::Dead(reason)),
            }
        }
        let claims: Vec<_> = events
            .iter()
            .map(|(index, _)| batch[*index].event.clone())
            .collect();
        match lease.renew_all(&claims).await {
            Ok(held) => events.retain(|(index, _)| {
                let keep = held.contains(&batch[*index].event.id);
                if !keep {
                    outcomes[*index] = Some(Outcome::LeaseLost);
                }
                keep
            }),
            Err(error) => {
                for (index, _) in &events {
                    outcomes[*index] = Some(Outcome::Retry(format!("renewing the lease: {error}")));
                }
                events.clear();
            }
        }
        if !events.is_empty() {
            let several = events.len() > 1;
            if let Err(status) = self.push(&mut outcomes, events.clone()).await {
                if several && status.code() == Code::InvalidArgument {
                    // One bad event must not make dead letters of the others: each alone.
                    for event in events {
                        let one = [event];
                        match lease.renew(&batch[one[0].0].event).await {
                            Ok(true) => {}
                            Ok(false) => {
                                outcomes[one[0].0] = Some(Outcome::LeaseLost);
                                continue;
                            }
                            Err(error) => {
                                outcomes[one[0].0] =
                                    Some(Outcome::Retry(format!("renewing the lease: {error}")));
                                continue;
                            }
                        }
                        if let Err(status) = self.push(&mut outcomes, one.to_vec()).await {
                            Self::failed(&mut outcomes, &one, &status);
                        }
                    }
                } else {
                    Self::failed(&mut outcomes, &events, &status);
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Retry("no outcome".into())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_statuses_decide_retry_or_dead_letter() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Cancelled,
        ] {
            assert_eq!(verdict(code), Verdict::Transient, "{code:?}");
        }
        for code in [Code::InvalidArgument, Code::PermissionDenied] {
            assert_eq!(verdict(code), Verdict::Permanent, "{code:?}");
        }
    }

    #[test]
    fn error_texts_lose_the_fiscal_codes() {
        assert_eq!(
            redact("bad event for RSSMRA80A01F205X", &["RSSMRA80A01F205X"]),
            "bad event for [citizen]"
        );
    }

    #[test]
    fn the_default_backoff_resumes_within_a_minute() {
        let policy = FascicoloConfig::new("http://127.0.0.1:7000").policy();
        assert_eq!(policy.batch, 500);
        assert!(policy.retry_max.saturating_mul(3) / 2 < Duration::from_secs(60));
        assert_eq!(policy.max_attempts, None);
    }
}
