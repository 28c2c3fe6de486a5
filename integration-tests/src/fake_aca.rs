//! A local stand-in for PagoPA's Archivio Centralizzato Avvisi that answers `POST
//! /paCreatePosition` the way `paCreatePosition.json` says the real one does:
//!
//! - no subscription key (`Ocp-Apim-Subscription-Key` header or `subscription-key` query
//!   parameter) or a wrong one: 401, as API Management answers;
//! - a body that is not a `NewDebtPositionRequest` (a missing required field, a wrong JSON
//!   type, `amount` not an integer of cents in 0..=99999999999, `entityType` not F|G,
//!   `paFiscalCode` not 11 digits, `iban`/`postalIban` not 27 characters, `expirationDate`
//!   not an RFC 3339 date-time, a text outside its length bounds): 400 with a ProblemJson;
//! - amount 0 closes (invalidates) a position it has, and is 404 for one it never had;
//! - an amount over 0 creates or updates a position, and is 409 on a closed one.
//!
//! It records every call and what it answered, the positions it holds, and how many calls
//! for one IUV it was serving at the same time. Tests script it to answer any status, to be
//! slow, or to refuse connections, to exercise the relay's retries, leases and dead letters.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The subscription key the fake accepts.
pub const SUBSCRIPTION_KEY: &str = "test-key";

/// A scripted answer to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This status (with a ProblemJson body), whatever the request.
    Status(u16),
    /// Wait this long, then answer as the real API would.
    Slow(Duration),
}

/// What the fake does with the next calls.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Answers for the next calls, whatever they are for, in order; then the real API's.
    pub script: VecDeque<Answer>,
    /// Every valid call for one of these IUVs gets this status.
    pub status_for_iuv: HashMap<String, u16>,
    /// Every call waits this long before being answered.
    pub delay: Duration,
}

/// One call and the answer it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The IUV in the body, empty when there was none.
    pub iuv: String,
    /// The amount in the body, when it was an integer.
    pub amount: Option<i64>,
    /// The answer's status.
    pub status: u16,
    /// When it was answered.
    pub at: Instant,
}

/// A position as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The last amount published, in cents (0 once closed).
    pub amount: i64,
    /// False once closed.
    pub valid: bool,
    /// The last accepted body.
    pub body: Value,
}

/// The fake's shared state.
#[derive(Debug, Default)]
pub struct FakeAcaState {
    /// Accepted requests, in order.
    pub accepted: Vec<Value>,
    /// Every call that carried a readable JSON body, in order, with its answer.
    pub calls: Vec<Call>,
    /// Calls answered with anything but 2xx.
    pub refused: usize,
    /// The positions it holds, by IUV.
    pub archive: HashMap<String, Archived>,
    /// The most calls for one IUV it was serving at the same time, by IUV.
    pub max_in_flight: HashMap<String, usize>,
    in_flight: HashMap<String, usize>,
    /// Subscription keys seen.
    pub keys: Vec<String>,
    /// W3C `traceparent` headers seen, in order.
    pub traceparents: Vec<String>,
    /// What to do next.
    pub behaviour: Behaviour,
}

impl FakeAcaState {
    /// The statuses answered to calls for `iuv`, in order.
    pub fn statuses(&self, iuv: &str) -> Vec<u16> {
        self.calls
            .iter()
            .filter(|c| c.iuv == iuv)
            .map(|c| c.status)
            .collect()
    }

    /// The amounts of the accepted calls for `iuv`, in order.
    pub fn accepted_amounts(&self, iuv: &str) -> Vec<i64> {
        self.accepted
            .iter()
            .filter(|b| b["iuv"] == iuv)
            .filter_map(|b| b["amount"].as_i64())
            .collect()
    }

    /// The most calls the fake served at once for any one IUV.
    pub fn max_concurrent_per_iuv(&self) -> usize {
        self.max_in_flight.values().copied().max().unwrap_or(0)
    }
}

type Shared = Arc<Mutex<FakeAcaState>>;

fn lock(state: &Shared) -> MutexGuard<'_, FakeAcaState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake ACA.
pub struct FakeAca {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Shared,
    server: Mutex<Option<JoinHandle<()>>>,
}

/// Counts a call for an IUV as being served until dropped: when the client gives up and
/// closes the connection, hyper drops the handler, and with it this.
struct InFlight {
    state: Shared,
    iuv: String,
}

impl InFlight {
    fn enter(state: &Shared, iuv: &str) -> Self {
        let mut s = lock(state);
        let now = {
            let n = s.in_flight.entry(iuv.to_owned()).or_default();
            *n += 1;
            *n
        };
        let max = s.max_in_flight.entry(iuv.to_owned()).or_default();
        *max = (*max).max(now);
        Self {
            state: state.clone(),
            iuv: iuv.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        if let Some(n) = s.in_flight.get_mut(&self.iuv) {
            *n = n.saturating_sub(1);
        }
    }
}

fn problem(status: u16, title: &str, detail: &str) -> (u16, Value) {
    (
        status,
        json!({
            "type": "https://example.com/problem/",
            "title": title,
            "status": status,
            "detail": detail,
        }),
    )
}

fn text_field(
    body: &Value,
    name: &str,
    min: usize,
    max: usize,
    required: bool,
    problems: &mut Vec<String>,
) {
    match body.get(name) {
        None if required => problems.push(format!("{name}: required")),
        None => {}
        Some(Value::String(text)) => {
            let len = text.chars().count();
            if len < min || len > max {
                problems.push(format!("{name}: length {len} not in {min}..={max}"));
            }
        }
        Some(other) => problems.push(format!("{name}: a string expected, got {other}")),
    }
}

/// What is wrong with a `NewDebtPositionRequest`, after the OpenAPI's schema.
pub fn validate(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if !body.is_object() {
        return vec!["the body must be a JSON object".to_owned()];
    }
    text_field(body, "paFiscalCode", 11, 11, true, &mut problems);
    if let Some(code) = body["paFiscalCode"].as_str()
        && !code.chars().all(|c| c.is_ascii_digit())
    {
        problems.push("paFiscalCode: 11 digits expected".to_owned());
    }
    match body.get("entityType") {
        None => problems.push("entityType: required".to_owned()),
        Some(Value::String(t)) if t == "F" || t == "G" => {}
        Some(other) => problems.push(format!("entityType: F or G expected, got {other}")),
    }
    text_field(body, "entityFiscalCode", 2, usize::MAX, true, &mut problems);
    text_field(body, "entityFullName", 1, 255, true, &mut problems);
    text_field(body, "iuv", 1, 255, true, &mut problems);
    text_field(body, "nav", 1, 255, false, &mut problems);
    text_field(body, "description", 1, 255, true, &mut problems);
    text_field(body, "iban", 27, 27, false, &mut problems);
    text_field(body, "postalIban", 27, 27, false, &mut problems);
    match body.get("amount") {
        None => problems.push("amount: required".to_owned()),
        // as_i64 is None for 300.0 and for "300": cents are a JSON integer.
        Some(amount) => match amount.as_i64() {
            Some(cents) if (0..=99_999_999_999).contains(&cents) => {}
            _ => problems.push(format!(
                "amount: an integer of euro cents in 0..=99999999999 expected, got {amount}"
            )),
        },
    }
    match body.get("expirationDate") {
        None => problems.push("expirationDate: required".to_owned()),
        Some(Value::String(date)) if OffsetDateTime::parse(date, &Rfc3339).is_ok() => {}
        Some(other) => problems.push(format!(
            "expirationDate: an RFC 3339 date-time expected, got {other}"
        )),
    }
    for flag in ["switchToExpired", "payStandIn"] {
        if let Some(value) = body.get(flag)
            && !value.is_boolean()
        {
            problems.push(format!("{flag}: a boolean expected, got {value}"));
        }
    }
    problems
}

fn subscription_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(key) = headers
        .get("Ocp-Apim-Subscription-Key")
        .and_then(|v| v.to_str().ok())
    {
        return Some(key.to_owned());
    }
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("subscription-key="))
        .map(str::to_owned)
}

/// The real API's answer to a valid request.
fn publish(state: &mut FakeAcaState, iuv: &str, amount: i64, body: Value) -> (u16, Value) {
    let known = state.archive.get(iuv).cloned();
    match (known, amount) {
        (None, 0) => problem(
            404,
            "Invocation exception",
            &format!("Error while invalidate debit position. Debit position not found with {iuv}"),
        ),
        (Some(position), cents) if cents > 0 && !position.valid => problem(
            409,
            "Unauthorized action",
            &format!("Unauthorized action on debt position with iuv {iuv}"),
        ),
        (_, cents) => {
            let valid = cents > 0;
            state.archive.insert(
                iuv.to_owned(),
                Archived {
                    amount: cents,
                    valid,
                    body: body.clone(),
                },
            );
            state.accepted.push(body.clone());
            let mut answer = body;
            answer["status"] = json!(if valid { "VALID" } else { "INVALID" });
            (200, answer)
        }
    }
}

async fn create(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (status, answer) = answer(&state, &uri, &headers, &body).await;
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(answer),
    )
        .into_response();
    // No pooled connection may outlive a call: refusing connections must refuse the next one.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn answer(state: &Shared, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> (u16, Value) {
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        lock(state).traceparents.push(traceparent.to_owned());
    }
    let key = subscription_key(headers, uri);
    if let Some(key) = &key {
        lock(state).keys.push(key.clone());
    }
    if key.as_deref() != Some(SUBSCRIPTION_KEY) {
        lock(state).refused += 1;
        return (
            401,
            json!({
                "statusCode": 401,
                "message": "Access denied due to missing or invalid subscription key. Make sure to \
                            provide a valid key for an active subscription."
            }),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        lock(state).refused += 1;
        return problem(400, "Bad Request", "the body is not JSON");
    };
    let iuv = body["iuv"].as_str().unwrap_or_default().to_owned();
    let amount = body["amount"].as_i64();
    let _serving = InFlight::enter(state, &iuv);
    let (delay, scripted) = {
        let mut s = lock(state);
        (s.behaviour.delay, s.behaviour.script.pop_front())
    };
    tokio::time::sleep(delay).await;
    let scripted = match scripted {
        Some(Answer::Slow(wait)) => {
            tokio::time::sleep(wait).await;
            None
        }
        Some(Answer::Status(status)) => Some(problem(status, "Scripted", "scripted answer")),
        None => None,
    };
    let mut s = lock(state);
    let (status, answer) = match scripted {
        Some(answer) => answer,
        None => {
            let problems = validate(&body);
            if !problems.is_empty() {
                problem(400, "Bad Request", &problems.join("; "))
            } else if let Some(status) = s.behaviour.status_for_iuv.get(&iuv) {
                problem(*status, "Scripted", &format!("scripted answer for {iuv}"))
            } else {
                publish(&mut s, &iuv, amount.unwrap_or_default(), body)
            }
        }
    };
    if !(200..300).contains(&status) {
        s.refused += 1;
    }
    s.calls.push(Call {
        iuv,
        amount,
        status,
        at: Instant::now(),
    });
    (status, answer)
}

fn serve(listener: TcpListener, state: Shared) -> JoinHandle<()> {
    let app = axum::Router::new()
        .route("/aca/v1/paCreatePosition", post(create))
        .with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

impl FakeAca {
    /// Starts the fake on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        let server = serve(listener, state.clone());
        Ok(Self {
            addr,
            state,
            server: Mutex::new(Some(server)),
        })
    }

    /// The base URL to configure the relay with.
    pub fn base_url(&self) -> String {
        format!("http://{}/aca/v1", self.addr)
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeAcaState) -> T) -> T {
        f(&mut lock(&self.state))
    }

    /// Stops listening: connections are refused until [`FakeAca::accept_connections`]. Calls
    /// being served finish.
    pub fn refuse_connections(&self) {
        let mut server = self
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(server) = server.take() {
            // Dropping the serve future closes the listening socket.
            server.abort();
        }
    }

    /// Listens again, on the same address.
    pub async fn accept_connections(&self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        let mut server = self
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = server.replace(serve(listener, self.state.clone())) {
            old.abort();
        }
        Ok(())
    }
}

impl Drop for FakeAca {
    fn drop(&mut self) {
        self.refuse_connections();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "paFiscalCode": "01199250158",
            "entityType": "F",
            "entityFiscalCode": "RSSMRA80A01F205X",
            "entityFullName": "Mario Rossi",
            "iuv": "12000000000000123",
            "nav": "312000000000000123",
            "amount": 30000,
            "description": "TARI 2026",
            "expirationDate": "2026-07-31T23:59:59+02:00",
            "iban": "IT02N0306909400000012345678",
            "switchToExpired": false,
            "payStandIn": true
        })
    }

    #[test]
    fn the_schema_is_enforced() {
        assert!(validate(&valid()).is_empty());
        let broken = |field: &str, value: Value| {
            let mut body = valid();
            body[field] = value;
            validate(&body)
        };
        assert_eq!(broken("amount", json!(300.5)).len(), 1);
        assert_eq!(broken("amount", json!("30000")).len(), 1);
        assert_eq!(broken("amount", json!(-1)).len(), 1);
        assert_eq!(broken("entityType", json!("X")).len(), 1);
        assert_eq!(broken("paFiscalCode", json!("0119925015A")).len(), 1);
        assert_eq!(broken("paFiscalCode", json!("0119925015")).len(), 1);
        assert_eq!(broken("iban", json!("IT02N03069094")).len(), 1);
        assert_eq!(
            broken("expirationDate", json!("2026-07-31T23:59:59")).len(),
            1
        );
        assert_eq!(broken("expirationDate", json!("2026-07-31")).len(), 1);
        assert_eq!(broken("payStandIn", json!("true")).len(), 1);
        let mut body = valid();
        body.as_object_mut().map(|o| o.remove("description"));
        assert_eq!(validate(&body), vec!["description: required".to_owned()]);
    }
}
