//! A local stand-in for PagoPA's Archivio Centralizzato Avvisi: it speaks `POST
//! /paCreatePosition` with the JSON body of `paCreatePosition.json`, checks the fields the
//! OpenAPI marks required, records what it accepted, and can be told to be down (503) or to
//! refuse one IUV (400), to test the relay's retries and dead letters.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;

/// What the fake does with the next calls.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Answer 503 to this many calls.
    pub down_for: usize,
    /// Answer 400 to calls for this IUV.
    pub refuse_iuv: Option<String>,
}

/// The fake's shared state.
#[derive(Debug, Default)]
pub struct FakeAcaState {
    /// Accepted requests, in order.
    pub accepted: Vec<Value>,
    /// Calls refused with 503 or 400.
    pub refused: usize,
    /// What to do next.
    pub behaviour: Behaviour,
    /// Subscription keys seen.
    pub keys: Vec<String>,
}

/// A running fake ACA.
pub struct FakeAca {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<Mutex<FakeAcaState>>,
}

const REQUIRED: [&str; 8] = [
    "paFiscalCode",
    "entityType",
    "entityFiscalCode",
    "entityFullName",
    "iuv",
    "amount",
    "description",
    "expirationDate",
];

async fn create(
    State(state): State<Arc<Mutex<FakeAcaState>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut state = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(key) = headers
        .get("Ocp-Apim-Subscription-Key")
        .and_then(|v| v.to_str().ok())
    {
        state.keys.push(key.to_owned());
    }
    if state.behaviour.down_for > 0 {
        state.behaviour.down_for -= 1;
        state.refused += 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"title": "down"})),
        );
    }
    let missing: Vec<_> = REQUIRED
        .iter()
        .filter(|f| body.get(**f).is_none())
        .collect();
    let iuv = body
        .get("iuv")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !missing.is_empty() || state.behaviour.refuse_iuv.as_deref() == Some(iuv.as_str()) {
        state.refused += 1;
        return (
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({"title": "Bad Request", "detail": format!("missing {missing:?}")}),
            ),
        );
    }
    state.accepted.push(body);
    (StatusCode::OK, Json(serde_json::json!({})))
}

impl FakeAca {
    /// Starts the fake on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(FakeAcaState::default()));
        let app = axum::Router::new()
            .route("/aca/v1/paCreatePosition", post(create))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state })
    }

    /// The base URL to configure the relay with.
    pub fn base_url(&self) -> String {
        format!("http://{}/aca/v1", self.addr)
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeAcaState) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }
}
