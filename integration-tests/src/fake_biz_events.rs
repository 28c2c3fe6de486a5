//! A local stand-in for PagoPA's biz-events API (`biz_events.json`, "Biz-Events Service")
//! that answers and validates the way the real one does, for the organization receipt by IUR
//! and IUV (`getOrganizationReceiptIuvIur`):
//!
//! - the subscription key, in `Ocp-Apim-Subscription-Key` (or the `subscription-key` query
//!   parameter, the spec's second scheme), missing or not one of [`Behaviour::keys`]: 401
//!   with no body;
//! - `GET /organizations/{organizationfiscalcode}/receipts/{iur}/paymentoptions/{iuv}`: an
//!   organization that is not 11 digits, or an IUR or IUV that is empty or longer than 35
//!   characters, is 422 with a `ProblemJson`; a receipt it does not hold for that
//!   organization (the notice's creditor or one of the transfers' beneficiaries), IUR and IUV
//!   is 404 with a `ProblemJson`; otherwise 200 with the `CtReceiptModelResponse`;
//! - every answer carries the `X-Request-Id` asked for, or one it makes up;
//! - on demand: scripted statuses for the next calls (429 with no body, as the spec says;
//!   500 with a `ProblemJson`).
//!
//! Amounts are JSON numbers in euro, as the real API writes them. It records every call.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The subscription key the fake accepts unless told otherwise.
pub const SUBSCRIPTION_KEY: &str = "biz-events-key-milano";

/// One transfer of a receipt (`TransferPA`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTransfer {
    /// `idTransfer`, 1..=5.
    pub id_transfer: u8,
    /// `fiscalCodePA`: the beneficiary.
    pub beneficiary: String,
    /// `iban`.
    pub iban: String,
    /// `transferAmount`, cents.
    pub amount_cents: i64,
    /// `remittanceInformation`.
    pub remittance_information: String,
    /// `transferCategory`.
    pub transfer_category: String,
}

/// One receipt biz-events holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeReceipt {
    /// `receiptId` (the IUR).
    pub receipt_id: String,
    /// `noticeNumber`.
    pub notice_number: String,
    /// `fiscalCode`: the notice's creditor.
    pub fiscal_code: String,
    /// `outcome`: OK or KO.
    pub outcome: String,
    /// `creditorReferenceId` (the IUV).
    pub iuv: String,
    /// `paymentAmount`, cents.
    pub amount_cents: i64,
    /// `idPSP`.
    pub psp_id: String,
    /// `paymentDateTime`, as PagoPA writes it (Rome time, no zone).
    pub payment_date_time: String,
    /// `transferList`.
    pub transfers: Vec<FakeTransfer>,
}

impl FakeReceipt {
    /// A paid receipt of `notice_number` (whose IUV is the notice number without its
    /// auxiliary digit) of `creditor`, receiptId `iur`, paid through `psp`, with one transfer
    /// of `amount_cents` to the creditor's `iban`.
    pub fn paid(
        creditor: &str,
        notice_number: &str,
        iur: &str,
        psp: &str,
        amount_cents: i64,
        iban: &str,
    ) -> Self {
        Self {
            receipt_id: iur.to_owned(),
            notice_number: notice_number.to_owned(),
            fiscal_code: creditor.to_owned(),
            outcome: "OK".to_owned(),
            iuv: notice_number.get(1..).unwrap_or_default().to_owned(),
            amount_cents,
            psp_id: psp.to_owned(),
            payment_date_time: "2026-11-23T10:00:00".to_owned(),
            transfers: vec![FakeTransfer {
                id_transfer: 1,
                beneficiary: creditor.to_owned(),
                iban: iban.to_owned(),
                amount_cents,
                remittance_information: format!(
                    "/RFB/{}",
                    notice_number.get(1..).unwrap_or_default()
                ),
                transfer_category: "9/0101100IM/".to_owned(),
            }],
        }
    }

    /// The `CtReceiptModelResponse`.
    pub fn body(&self) -> Value {
        json!({
            "receiptId": self.receipt_id,
            "noticeNumber": self.notice_number,
            "fiscalCode": self.fiscal_code,
            "outcome": self.outcome,
            "creditorReferenceId": self.iuv,
            "paymentAmount": euro(self.amount_cents),
            "description": "Pagamento",
            "companyName": "Comune di Milano",
            "officeName": "Ragioneria",
            "debtor": {
                "entityUniqueIdentifierType": "F",
                "entityUniqueIdentifierValue": "RSSMRA80A01F205X",
                "fullName": "Mario Rossi",
                "city": "Milano",
                "country": "IT",
            },
            "transferList": self.transfers.iter().map(|t| json!({
                "idTransfer": t.id_transfer,
                "transferAmount": euro(t.amount_cents),
                "fiscalCodePA": t.beneficiary,
                "iban": t.iban,
                "mbdAttachment": "",
                "remittanceInformation": t.remittance_information,
                "transferCategory": t.transfer_category,
                "metadata": [],
            })).collect::<Vec<_>>(),
            "idPSP": self.psp_id,
            "pspFiscalCode": "00799960158",
            "pspPartitaIVA": "00799960158",
            "pspCompanyName": "Banca di prova",
            "idChannel": format!("{}_01", self.psp_id),
            "channelDescription": "app",
            "payer": {
                "entityUniqueIdentifierType": "F",
                "entityUniqueIdentifierValue": "RSSMRA80A01F205X",
                "fullName": "Mario Rossi",
            },
            "paymentMethod": "creditCard",
            "fee": 1.5,
            "primaryCiIncurredFee": 0,
            "idBundle": "",
            "idCiBundle": "",
            "paymentDateTime": self.payment_date_time,
            "paymentDateTimeFormatted": format!("{}Z", self.payment_date_time),
            "applicationDate": self.payment_date_time.get(..10).unwrap_or_default(),
            "transferDate": self.payment_date_time.get(..10).unwrap_or_default(),
            "metadata": [],
        })
    }
}

/// Cents as the JSON number the API writes (`150.5`, `100`).
fn euro(cents: i64) -> Value {
    let text = format!(
        "{}{}.{:02}",
        if cents < 0 { "-" } else { "" },
        cents.abs() / 100,
        cents.abs() % 100
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// What the fake does.
#[derive(Debug)]
pub struct Behaviour {
    /// Subscription keys it accepts; any other is 401.
    pub keys: Vec<String>,
    /// Statuses for the next calls, in order, whatever they ask.
    pub script: VecDeque<u16>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            keys: vec![SUBSCRIPTION_KEY.to_owned()],
            script: VecDeque::new(),
        }
    }
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The organization, IUR and IUV asked for, percent-decoded.
    pub asked: (String, String, String),
    /// The status answered.
    pub status: u16,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct FakeBizEventsState {
    /// The receipts it holds.
    pub receipts: Vec<FakeReceipt>,
    /// Every call, in order.
    pub calls: Vec<Call>,
    /// What it does.
    pub behaviour: Behaviour,
}

type Shared = Arc<Mutex<FakeBizEventsState>>;

fn lock(state: &Shared) -> MutexGuard<'_, FakeBizEventsState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `ProblemJson` answer.
fn problem(status: u16, title: &str, detail: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({ "title": title, "status": status, "detail": detail })),
    )
        .into_response()
}

fn with_request_id(mut response: Response, headers: &HeaderMap) -> Response {
    let id = headers.get("X-Request-Id").cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .unwrap_or(HeaderValue::from_static("fake"))
    });
    response.headers_mut().insert("X-Request-Id", id);
    response
}

fn query_key(uri: &Uri) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "subscription-key")
        .map(|(_, value)| value.to_owned())
}

async fn receipt(
    State(state): State<Shared>,
    Path((organization, iur, iuv)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    let key = headers
        .get("Ocp-Apim-Subscription-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_key(&uri));
    let response = if !key.is_some_and(|k| s.behaviour.keys.contains(&k)) {
        // The spec's 401 has no body.
        StatusCode::UNAUTHORIZED.into_response()
    } else if let Some(status) = s.behaviour.script.pop_front() {
        match status {
            429 => StatusCode::TOO_MANY_REQUESTS.into_response(),
            _ => problem(status, "Service unavailable", "scripted failure"),
        }
    } else if organization.len() != 11 || !organization.bytes().all(|b| b.is_ascii_digit()) {
        problem(
            422,
            "Unable to process the request",
            "organizationfiscalcode must be a fiscal code of 11 digits",
        )
    } else if !(1..=35).contains(&iur.chars().count()) || !(1..=35).contains(&iuv.chars().count()) {
        problem(
            422,
            "Unable to process the request",
            "iur and iuv must be 1 to 35 characters",
        )
    } else {
        let found = s.receipts.iter().find(|r| {
            r.receipt_id == iur
                && r.iuv == iuv
                && (r.fiscal_code == organization
                    || r.transfers.iter().any(|t| t.beneficiary == organization))
        });
        match found {
            Some(r) => (StatusCode::OK, axum::Json(r.body())).into_response(),
            None => problem(
                404,
                "Not found the receipt",
                &format!(
                    "Unable to find the receipt with organization {organization}, IUR {iur} and IUV {iuv}"
                ),
            ),
        }
    };
    s.calls.push(Call {
        asked: (organization, iur, iuv),
        status: response.status().as_u16(),
    });
    with_request_id(response, &headers)
}

/// A running fake biz-events API.
pub struct FakeBizEvents {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Shared,
    server: JoinHandle<()>,
}

impl FakeBizEvents {
    /// Starts the fake on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        let app = axum::Router::new()
            .route(
                "/organizations/{organization}/receipts/{iur}/paymentoptions/{iuv}",
                get(receipt),
            )
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

    /// The base URL to configure incasso with (`INCASSO_BIZ_EVENTS_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes PagoPA hold `receipt`.
    pub fn hold(&self, receipt: FakeReceipt) {
        lock(&self.state).receipts.push(receipt);
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeBizEventsState) -> T) -> T {
        f(&mut lock(&self.state))
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }
}

impl Drop for FakeBizEvents {
    fn drop(&mut self) {
        self.server.abort();
    }
}
