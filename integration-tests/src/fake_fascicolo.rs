//! A local stand-in for the Fascicolo del Cittadino: a real tonic server implementing
//! `fascicolo.v1.PaymentHistoryService` that validates like the real one should:
//!
//! - a batch of more than 500 events, or an event without a UUID `event_id`, a valid personal
//!   fiscal code, a sequence from 1, `occurred_at`, or an event body with its fields (notice
//!   numbers of 18 digits, positive amounts, dates), is refused whole with INVALID_ARGUMENT
//!   naming the field (never the fiscal code);
//! - per citizen it expects sequence 1, then 2, 3, ...: an event id it accepted before is
//!   accepted again (nothing changes); the expected sequence is accepted; a later one is a
//!   gap, answered with `ResendFrom { next_sequence }`, and the citizen's later events of the
//!   batch wait with it; an earlier one under a new id is a sequence reused, recorded as a
//!   violation.
//!
//! It records what it accepted in order, every call, and how many calls for one citizen it
//! was serving at once. Tests script it to answer any status (once, or until told otherwise),
//! to refuse one citizen's events, to be slow, and to "forget" a citizen's events from a
//! sequence on (as after restoring a backup), to exercise the relay's retries and resends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Code, Request, Response, Status};

use incasso_domain::fiscal_code::FiscalCode;
use incasso_relay::fascicolo::pb;
use incasso_relay::fascicolo::pb::payment_history_service_server::{
    PaymentHistoryService, PaymentHistoryServiceServer,
};

/// An event the fake accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Its id.
    pub event_id: String,
    /// The citizen.
    pub citizen: String,
    /// Its sequence.
    pub sequence: u64,
    /// `notice_issued`, `notice_changed`, `notice_cancelled`, `payment_received`, `refund_due`.
    pub kind: &'static str,
    /// The event as received.
    pub event: pb::CitizenEvent,
}

/// One call and how it was answered.
#[derive(Debug, Clone)]
pub struct Call {
    /// Events in the batch.
    pub events: usize,
    /// The status when it failed.
    pub status: Option<Code>,
    /// When it was answered.
    pub at: Instant,
}

/// What the fake does with the next calls.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Statuses for the next calls, in order; then the real behaviour.
    pub script: VecDeque<Code>,
    /// Every call fails with this status while set (an outage).
    pub down: Option<Code>,
    /// Every batch holding an event of one of these citizens is INVALID_ARGUMENT.
    pub refuse_citizens: HashSet<String>,
    /// Every call waits this long first.
    pub delay: Duration,
    /// Keep counts and timings only, not each accepted event (for the benchmark's volumes).
    pub counts_only: bool,
    /// Keep each successful call's events, in the order answered (the benchmark's baseline
    /// sends them again).
    pub keep_batches: bool,
}

/// The fake's shared state.
#[derive(Debug, Default)]
pub struct State {
    /// What it does next.
    pub behaviour: Behaviour,
    /// The next sequence per citizen.
    pub expected: HashMap<String, u64>,
    /// Every event accepted, in order (an event accepted again after being forgotten appears
    /// twice).
    pub accepted: Vec<Accepted>,
    /// Ids accepted and not forgotten.
    pub accepted_ids: HashSet<String>,
    /// Every call.
    pub calls: Vec<Call>,
    /// How many events it accepted in all (each acceptance of a forgotten event again too).
    pub accepted_total: usize,
    /// When it accepted its first event.
    pub first_accept: Option<Instant>,
    /// When it accepted its last event.
    pub last_accept: Option<Instant>,
    /// When each payment was acknowledged, by receiptId.
    pub receipt_acks: HashMap<String, Instant>,
    /// The events of each successful call, when `keep_batches` is set.
    pub batches: Vec<Vec<pb::CitizenEvent>>,
    /// Sequences reused under a new event id, or other breaches of the contract.
    pub violations: Vec<String>,
    /// Calls in flight per citizen, and the most ever seen at once.
    in_flight: HashMap<String, usize>,
    /// The most calls in flight for one citizen at once.
    pub max_in_flight_per_citizen: usize,
}

/// A running fake Fascicolo.
pub struct FakeFascicolo {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FakeFascicolo {
    /// Starts the fake on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let service = PaymentHistoryServiceServer::new(Service {
            state: Arc::clone(&state),
        });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Self { addr, state, task })
    }

    /// Its URL, for `INCASSO_FASCICOLO_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state, to script or inspect.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sequences accepted for `citizen`, in the order accepted.
    pub fn sequences(&self, citizen: &str) -> Vec<u64> {
        self.state()
            .accepted
            .iter()
            .filter(|a| a.citizen == citizen)
            .map(|a| a.sequence)
            .collect()
    }

    /// Everything accepted for `citizen`, in order.
    pub fn history(&self, citizen: &str) -> Vec<Accepted> {
        self.state()
            .accepted
            .iter()
            .filter(|a| a.citizen == citizen)
            .cloned()
            .collect()
    }

    /// How many events it accepted in all.
    pub fn accepted_count(&self) -> usize {
        self.state().accepted_total
    }

    /// Forgets `citizen`'s events from `sequence` on: the next later event is a gap.
    pub fn forget_from(&self, citizen: &str, sequence: u64) {
        let mut state = self.state();
        let forgotten: Vec<String> = state
            .accepted
            .iter()
            .filter(|a| a.citizen == citizen && a.sequence >= sequence)
            .map(|a| a.event_id.clone())
            .collect();
        for id in forgotten {
            state.accepted_ids.remove(&id);
        }
        state.expected.insert(citizen.to_owned(), sequence);
    }
}

impl Drop for FakeFascicolo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A valid personal fiscal code, different for each `n` (test data: the check character is
/// the one the domain's parser accepts).
pub fn citizen_code(n: u32) -> String {
    let letter = |k: u32| char::from(b'A' + u8::try_from((n / 26u32.pow(k)) % 26).unwrap_or(0));
    let stem: String = (0..6).rev().map(letter).collect::<String>() + "80A01F205";
    ('A'..='Z')
        .map(|c| format!("{stem}{c}"))
        .find(|code| FiscalCode::parse(code).is_ok())
        .unwrap_or(stem)
}

struct Service {
    state: Arc<Mutex<State>>,
}

impl Service {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn kind(event: &pb::CitizenEvent) -> Option<&'static str> {
    use pb::citizen_event::Event;
    Some(match event.event.as_ref()? {
        Event::NoticeIssued(_) => "notice_issued",
        Event::NoticeChanged(_) => "notice_changed",
        Event::NoticeCancelled(_) => "notice_cancelled",
        Event::PaymentReceived(_) => "payment_received",
        Event::RefundDue(_) => "refund_due",
    })
}

fn notice_number_ok(n: &str) -> bool {
    n.len() == 18 && n.bytes().all(|b| b.is_ascii_digit())
}

fn date_ok(d: &str) -> bool {
    time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
}

/// The first field of `event` (at `index`) that the real Fascicolo would refuse.
fn invalid_field(index: usize, event: &pb::CitizenEvent) -> Option<String> {
    use pb::citizen_event::Event;
    let at = |field: &str| Some(format!("events[{index}].{field}"));
    if uuid::Uuid::parse_str(&event.event_id).is_err()
        || event.event_id != event.event_id.to_ascii_lowercase()
    {
        return at("event_id");
    }
    if !matches!(
        FiscalCode::parse(&event.citizen_fiscal_code),
        Ok(FiscalCode::Personal(_))
    ) || event.citizen_fiscal_code.len() != 16
    {
        return at("citizen_fiscal_code");
    }
    if event.citizen_sequence == 0 {
        return at("citizen_sequence");
    }
    if event.occurred_at.is_none() {
        return at("occurred_at");
    }
    match event.event.as_ref() {
        None => at("event"),
        Some(Event::NoticeIssued(n) | Event::NoticeChanged(n)) => {
            if !notice_number_ok(&n.notice_number) {
                at("notice.notice_number")
            } else if n.amount_cents <= 0 {
                at("notice.amount_cents")
            } else if !date_ok(&n.due_date) {
                at("notice.due_date")
            } else if n.creditor_fiscal_code.len() != 11 {
                at("notice.creditor_fiscal_code")
            } else if n.debt_position_id.is_empty() || n.qr_payload.is_empty() {
                at("notice.debt_position_id")
            } else if n.installment_index == 0 || n.installment_index > n.installment_count {
                at("notice.installment_index")
            } else {
                None
            }
        }
        Some(Event::NoticeCancelled(c)) => {
            if c.debt_position_id.is_empty() {
                at("notice_cancelled.debt_position_id")
            } else if !c.notice_numbers.iter().all(|n| notice_number_ok(n)) {
                at("notice_cancelled.notice_numbers")
            } else {
                None
            }
        }
        Some(Event::PaymentReceived(p)) => {
            if !notice_number_ok(&p.notice_number) {
                at("payment_received.notice_number")
            } else if p.receipt_id.is_empty() {
                at("payment_received.receipt_id")
            } else if p.amount_cents <= 0 {
                at("payment_received.amount_cents")
            } else if p.paid_at.is_none() {
                at("payment_received.paid_at")
            } else {
                None
            }
        }
        Some(Event::RefundDue(r)) => {
            if r.receipt_id.is_empty() || r.amount_cents <= 0 || r.reason == 0 {
                at("refund_due")
            } else {
                None
            }
        }
    }
}

#[tonic::async_trait]
impl PaymentHistoryService for Service {
    async fn push_events(
        &self,
        request: Request<pb::PushEventsRequest>,
    ) -> Result<Response<pb::PushEventsResponse>, Status> {
        let events = request.into_inner().events;
        let citizens: HashSet<String> = events
            .iter()
            .map(|e| e.citizen_fiscal_code.clone())
            .collect();
        let delay = {
            let mut state = self.lock();
            for citizen in &citizens {
                let n = state.in_flight.entry(citizen.clone()).or_insert(0);
                *n += 1;
                let n = *n;
                state.max_in_flight_per_citizen = state.max_in_flight_per_citizen.max(n);
            }
            state.behaviour.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.lock();
        for citizen in &citizens {
            if let Some(n) = state.in_flight.get_mut(citizen) {
                *n -= 1;
            }
        }
        let kept = state.behaviour.keep_batches.then(|| events.clone());
        let answer = answer(&mut state, events);
        if let (Some(kept), Ok(_)) = (kept, &answer) {
            state.batches.push(kept);
        }
        state.calls.push(Call {
            events: citizens.len(),
            status: answer.as_ref().err().map(Status::code),
            at: Instant::now(),
        });
        answer.map(Response::new)
    }
}

fn answer(
    state: &mut State,
    events: Vec<pb::CitizenEvent>,
) -> Result<pb::PushEventsResponse, Status> {
    if let Some(code) = state.behaviour.script.pop_front() {
        return Err(Status::new(code, "scripted failure"));
    }
    if let Some(code) = state.behaviour.down {
        return Err(Status::new(code, "the Fascicolo is down"));
    }
    if events.is_empty() || events.len() > 500 {
        return Err(Status::invalid_argument("events: 1 to 500 per call"));
    }
    for (index, event) in events.iter().enumerate() {
        if let Some(field) = invalid_field(index, event) {
            return Err(Status::invalid_argument(format!("{field}: invalid")));
        }
        if state
            .behaviour
            .refuse_citizens
            .contains(&event.citizen_fiscal_code)
        {
            // As a careless real one might: the refusal quotes the fiscal code.
            return Err(Status::invalid_argument(format!(
                "events[{index}]: citizen {} is not registered",
                event.citizen_fiscal_code
            )));
        }
    }
    let mut response = pb::PushEventsResponse::default();
    let mut waiting: HashSet<String> = HashSet::new();
    for event in events {
        let citizen = event.citizen_fiscal_code.clone();
        if waiting.contains(&citizen) {
            continue;
        }
        if state.accepted_ids.contains(&event.event_id) {
            response.accepted_event_ids.push(event.event_id.clone());
            continue;
        }
        let expected = *state.expected.get(&citizen).unwrap_or(&1);
        if event.citizen_sequence == expected {
            state.expected.insert(citizen.clone(), expected + 1);
            state.accepted_ids.insert(event.event_id.clone());
            response.accepted_event_ids.push(event.event_id.clone());
            let now = Instant::now();
            state.accepted_total += 1;
            state.first_accept.get_or_insert(now);
            state.last_accept = Some(now);
            if let Some(pb::citizen_event::Event::PaymentReceived(p)) = &event.event {
                state.receipt_acks.insert(p.receipt_id.clone(), now);
            }
            if state.behaviour.counts_only {
                continue;
            }
            state.accepted.push(Accepted {
                event_id: event.event_id.clone(),
                citizen,
                sequence: event.citizen_sequence,
                kind: kind(&event).unwrap_or("unknown"),
                event,
            });
        } else {
            if event.citizen_sequence < expected {
                state.violations.push(format!(
                    "sequence {} reused by event {}",
                    event.citizen_sequence, event.event_id
                ));
            }
            response.resend_from.push(pb::ResendFrom {
                citizen_fiscal_code: citizen.clone(),
                next_sequence: expected,
            });
            waiting.insert(citizen);
        }
    }
    Ok(response)
}
