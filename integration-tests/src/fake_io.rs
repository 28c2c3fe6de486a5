//! A local stand-in for App IO's Services API (`io-functions-services` OpenAPI 4.1.1, base
//! path `/api/v1`) that validates the way the real one does:
//!
//! - `Ocp-Apim-Subscription-Key` missing or not one of the service keys it knows: 401;
//! - `POST /profiles` `{"fiscal_code"}`: 400 for a fiscal code outside IO's pattern; 404 for
//!   a citizen not on IO; otherwise 200 `{"sender_allowed", "preferred_languages"}`;
//! - `POST /messages` (`NewMessage`): 400 with a ProblemJson for a fiscal code outside IO's
//!   pattern, a subject outside 10..=120 characters, markdown outside 80..=10,000, a
//!   `due_date` that is not a UTC timestamp, `payment_data` outside `content`, an `amount`
//!   that is not an integer of cents in 1..=9,999,999,999, a `notice_number` not matching
//!   `^[0123][0-9]{17}$`, a non-boolean `invalid_after_due_date`; 403 for `payment_data`
//!   with a `payee` (the service is not in ApiMessageWriteWithPayee) and for a key in
//!   [`Behaviour::forbidden_keys`] (a service not enabled for production); otherwise 201
//!   `{"id"}` with a `Location` header;
//! - scripted answers (429 bursts, 5xx, any status) for the next calls, whatever they are.
//!
//! It records every call (path, status) and every message it accepted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The service key the fake accepts unless told otherwise.
pub const SERVICE_KEY: &str = "io-service-key-tari";

/// How the fake answers a profile lookup for one citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// On IO; `true` when the citizen lets the service write to them.
    OnIo(bool),
    /// Not on IO: 404.
    NotOnIo,
}

/// What the fake does.
#[derive(Debug)]
pub struct Behaviour {
    /// Answers (statuses, with a ProblemJson) for the next calls, in order, whatever they are.
    pub script: VecDeque<u16>,
    /// Service keys it knows; any other is 401.
    pub keys: HashSet<String>,
    /// Known keys whose service may not send (403 to messages).
    pub forbidden_keys: HashSet<String>,
    /// Profiles by fiscal code; a citizen not listed is on IO and allows the sender.
    pub profiles: HashMap<String, Profile>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            script: VecDeque::new(),
            keys: HashSet::from([SERVICE_KEY.to_owned()]),
            forbidden_keys: HashSet::new(),
            profiles: HashMap::new(),
        }
    }
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `/profiles` or `/messages`.
    pub path: String,
    /// The answer's status.
    pub status: u16,
    /// The ProblemJson detail of a refusal.
    pub detail: String,
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The id it answered.
    pub id: String,
    /// The service key it came with.
    pub key: String,
    /// The body as sent.
    pub body: Value,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct FakeIoState {
    /// Every call, in order.
    pub calls: Vec<Call>,
    /// Accepted messages, in order.
    pub accepted: Vec<Accepted>,
    /// What it does.
    pub behaviour: Behaviour,
}

impl FakeIoState {
    /// The accepted messages about one notice, in order.
    pub fn messages_for(&self, notice_number: &str) -> Vec<&Accepted> {
        self.accepted
            .iter()
            .filter(|m| m.body["content"]["payment_data"]["notice_number"] == notice_number)
            .collect()
    }

    /// The statuses answered to calls to `path`, in order.
    pub fn statuses(&self, path: &str) -> Vec<u16> {
        self.calls
            .iter()
            .filter(|c| c.path == path)
            .map(|c| c.status)
            .collect()
    }
}

type Shared = Arc<Mutex<FakeIoState>>;

fn lock(state: &Shared) -> MutexGuard<'_, FakeIoState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake IO.
pub struct FakeIo {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Shared,
    server: JoinHandle<()>,
}

/// True when `code` matches IO's FiscalCode pattern.
pub fn is_io_fiscal_code(code: &str) -> bool {
    const DIGITISH: &[u8] = b"0123456789LMNPQRSTUV";
    const MONTHS: &[u8] = b"ABCDEHLMPRST";
    let b = code.as_bytes();
    b.len() == 16
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && b[6..8].iter().all(|c| DIGITISH.contains(c))
        && MONTHS.contains(&b[8])
        && b[9..11].iter().all(|c| DIGITISH.contains(c))
        && b[11].is_ascii_uppercase()
        && b[12..15].iter().all(|c| DIGITISH.contains(c))
        && b[15].is_ascii_uppercase()
}

/// True when `number` matches `^[0123][0-9]{17}$`.
pub fn is_io_notice_number(number: &str) -> bool {
    let b = number.as_bytes();
    b.len() == 18 && (b'0'..=b'3').contains(&b[0]) && b.iter().all(u8::is_ascii_digit)
}

/// What is wrong with a `NewMessage`, after the OpenAPI; `Err` with the status to answer.
pub fn validate_message(body: &Value) -> Result<(), (u16, String)> {
    let bad = |detail: String| Err((400, detail));
    let Some(message) = body.as_object() else {
        return bad("the body must be a JSON object".into());
    };
    match message.get("fiscal_code").and_then(Value::as_str) {
        Some(code) if is_io_fiscal_code(code) => {}
        _ => return bad("fiscal_code: does not match the FiscalCode pattern".into()),
    }
    if message.contains_key("payment_data") {
        return bad("payment_data: not a property of NewMessage (it belongs in content)".into());
    }
    let Some(content) = message.get("content").and_then(Value::as_object) else {
        return bad("content: required".into());
    };
    let length = |name: &str, min: usize, max: usize| -> Result<(), (u16, String)> {
        match content.get(name).and_then(Value::as_str) {
            Some(text) if (min..=max).contains(&text.chars().count()) => Ok(()),
            Some(text) => Err((
                400,
                format!(
                    "content.{name}: {} characters, not in {min}..={max}",
                    text.chars().count()
                ),
            )),
            None => Err((400, format!("content.{name}: required string"))),
        }
    };
    length("subject", 10, 120)?;
    length("markdown", 80, 10_000)?;
    if let Some(due) = content.get("due_date") {
        let utc = due
            .as_str()
            .filter(|d| d.ends_with('Z'))
            .and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok());
        if utc.is_none() {
            return bad(format!("content.due_date: not a UTC timestamp: {due}"));
        }
    }
    if let Some(payment) = content.get("payment_data") {
        let Some(payment) = payment.as_object() else {
            return bad("content.payment_data: an object expected".into());
        };
        match payment.get("amount").and_then(Value::as_i64) {
            Some(cents) if (1..=9_999_999_999).contains(&cents) => {}
            _ => {
                return bad(format!(
                    "content.payment_data.amount: an integer in 1..=9999999999 expected, got {}",
                    payment.get("amount").unwrap_or(&Value::Null)
                ));
            }
        }
        match payment.get("notice_number").and_then(Value::as_str) {
            Some(number) if is_io_notice_number(number) => {}
            _ => {
                return bad(
                    "content.payment_data.notice_number: does not match ^[0123][0-9]{17}$".into(),
                );
            }
        }
        if let Some(flag) = payment.get("invalid_after_due_date")
            && !flag.is_boolean()
        {
            return bad("content.payment_data.invalid_after_due_date: a boolean expected".into());
        }
        if payment.contains_key("payee") {
            return Err((
                403,
                "You do not have enough permissions to send a payment message with payee".into(),
            ));
        }
    }
    Ok(())
}

fn problem(status: u16, detail: &str) -> Value {
    json!({
        "type": "https://example.com/problem/",
        "title": StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error"),
        "status": status,
        "detail": detail,
    })
}

fn reply(status: u16, body: Value) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The common first steps: the key, a scripted answer, a JSON body.
fn admit(
    state: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Value), (u16, Value)> {
    let mut s = lock(state);
    let key = headers
        .get("Ocp-Apim-Subscription-Key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let refuse = |s: &mut FakeIoState, status: u16, detail: &str| {
        s.calls.push(Call {
            path: path.to_owned(),
            status,
            detail: detail.to_owned(),
        });
        (status, problem(status, detail))
    };
    if !s.behaviour.keys.contains(&key) {
        return Err(refuse(
            &mut s,
            401,
            "Access denied due to missing or invalid subscription key",
        ));
    }
    if let Some(status) = s.behaviour.script.pop_front() {
        return Err(refuse(&mut s, status, "scripted answer"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(body) => Ok((key, body)),
        Err(_) => Err(refuse(&mut s, 400, "the body is not JSON")),
    }
}

async fn profiles(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (_, body) = match admit(&state, "/profiles", &headers, &body) {
        Ok(admitted) => admitted,
        Err((status, problem)) => return reply(status, problem),
    };
    let mut s = lock(&state);
    let code = body["fiscal_code"].as_str().unwrap_or_default().to_owned();
    let (status, answer) = if !is_io_fiscal_code(&code) {
        (
            400,
            problem(400, "fiscal_code: does not match the FiscalCode pattern"),
        )
    } else {
        match s.behaviour.profiles.get(&code).copied() {
            Some(Profile::NotOnIo) => (404, problem(404, "Profile not found")),
            Some(Profile::OnIo(allowed)) => (
                200,
                json!({"sender_allowed": allowed, "preferred_languages": ["it_IT"]}),
            ),
            None => (
                200,
                json!({"sender_allowed": true, "preferred_languages": ["it_IT"]}),
            ),
        }
    };
    s.calls.push(Call {
        path: "/profiles".to_owned(),
        status,
        detail: answer["detail"].as_str().unwrap_or_default().to_owned(),
    });
    reply(status, answer)
}

async fn messages(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (key, body) = match admit(&state, "/messages", &headers, &body) {
        Ok(admitted) => admitted,
        Err((status, problem)) => return reply(status, problem),
    };
    let mut s = lock(&state);
    let verdict = validate_message(&body).and_then(|()| {
        if s.behaviour.forbidden_keys.contains(&key) {
            Err((
                403,
                "The service is not allowed to send messages in production".to_owned(),
            ))
        } else {
            Ok(())
        }
    });
    match verdict {
        Ok(()) => {
            let id = format!("01J{:023}", s.accepted.len() + 1);
            s.accepted.push(Accepted {
                id: id.clone(),
                key,
                body,
            });
            s.calls.push(Call {
                path: "/messages".to_owned(),
                status: 201,
                detail: String::new(),
            });
            let mut response = reply(201, json!({ "id": id }));
            if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/messages/{id}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err((status, detail)) => {
            s.calls.push(Call {
                path: "/messages".to_owned(),
                status,
                detail: detail.clone(),
            });
            reply(status, problem(status, &detail))
        }
    }
}

impl FakeIo {
    /// Starts the fake on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        let app = axum::Router::new()
            .route("/api/v1/profiles", post(profiles))
            .route("/api/v1/messages", post(messages))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// The base URL to configure incasso with (`INCASSO_IO_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeIoState) -> T) -> T {
        f(&mut lock(&self.state))
    }
}

impl Drop for FakeIo {
    fn drop(&mut self) {
        self.server.abort();
    }
}
