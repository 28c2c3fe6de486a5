//! A local stand-in for PagoPA's FdR organization API (`pagopa-fdr.org.openapi.json`,
//! v1.1.60) that answers and validates the way the real one does:
//!
//! - `Ocp-Apim-Subscription-Key` missing or not [`Behaviour::keys`]: 401;
//! - `GET /organizations/{organizationId}/fdrs`: `organizationId` 1..=35 characters;
//!   `publishedGt` and `flowDate` date-times (RFC 3339, or `yyyy-MM-ddTHH:mm:ss` in UTC),
//!   each defaulting to now − 1 month, `publishedGt` older than 30 days refused (as the
//!   platform does); `page` an integer ≥ 1, `size` an integer in 1..=1000, `pspId` 1..=35
//!   characters; anything else is 400 with an `ErrorResponse` naming the parameter. It
//!   lists only the latest published revision of each flow with `published > publishedGt`
//!   and flow date `> flowDate`, sorted by (flow date, flow id), paged;
//! - `GET …/fdrs/{fdr}/revisions/{revision}/psps/{pspId}`: the revision's header
//!   (`SingleFlowResponse`), 400 for a revision that is not an integer ≥ 1, 404 for one it
//!   does not have;
//! - `GET …/payments`: its payments paged by `page` (≥ 1) and `size` (≥ 1), 400 otherwise;
//! - on demand: scripted statuses for the next calls (429 with `Retry-After`, 5xx), a
//!   payments page that keeps failing with 500, and a delay before answering lists.
//!
//! Amounts are written as JSON numbers, as the real API writes its doubles. It records every
//! call (what was asked and the status answered).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The subscription key the fake accepts unless told otherwise.
pub const SUBSCRIPTION_KEY: &str = "fdr-org-key-milano";

/// One payment of a flow (`Payment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePayment {
    /// `iuv`.
    pub iuv: String,
    /// `iur`.
    pub iur: String,
    /// `idTransfer`, 1..=5.
    pub id_transfer: u8,
    /// `pay`, in cents.
    pub amount_cents: i64,
    /// `payStatus`: EXECUTED, REVOKED, STAND_IN, STAND_IN_NO_RPT, NO_RPT.
    pub pay_status: &'static str,
    /// `payDate`.
    pub pay_date: OffsetDateTime,
}

impl FakePayment {
    /// An executed payment of `amount_cents` for (`iuv`, `iur`, transfer 1).
    pub fn executed(iuv: &str, iur: &str, amount_cents: i64, pay_date: OffsetDateTime) -> Self {
        Self {
            iuv: iuv.to_owned(),
            iur: iur.to_owned(),
            id_transfer: 1,
            amount_cents,
            pay_status: "EXECUTED",
            pay_date,
        }
    }
}

/// One published revision of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFlow {
    /// The creditor it is addressed to.
    pub organization: String,
    /// `fdr`.
    pub fdr: String,
    /// `sender.pspId`.
    pub psp_id: String,
    /// `revision`.
    pub revision: u32,
    /// `published`.
    pub published: OffsetDateTime,
    /// `fdrDate` (the list's `flowDate`).
    pub fdr_date: OffsetDateTime,
    /// `regulation` (the SCT's TRN).
    pub regulation: String,
    /// `regulationDate`.
    pub regulation_date: Date,
    /// The payments, in index order.
    pub payments: Vec<FakePayment>,
    /// `sumPayments` when it should not be the payments' sum (a flow the EC imports as
    /// declared, warning of it).
    pub declared_sum_cents: Option<i64>,
    /// `totPayments` when it should not be the payments' count (pages the EC did not get: it
    /// must refuse the flow and ask again).
    pub declared_count: Option<usize>,
}

impl FakeFlow {
    /// A revision of flow `fdr` of `psp_id` for `organization`, published at `published`,
    /// dated an hour before.
    pub fn new(
        organization: &str,
        fdr: &str,
        psp_id: &str,
        revision: u32,
        published: OffsetDateTime,
        payments: Vec<FakePayment>,
    ) -> Self {
        Self {
            organization: organization.to_owned(),
            fdr: fdr.to_owned(),
            psp_id: psp_id.to_owned(),
            revision,
            published,
            fdr_date: published - time::Duration::hours(1),
            regulation: format!("TRN-{fdr}-{revision}"),
            regulation_date: published.date(),
            payments,
            declared_sum_cents: None,
            declared_count: None,
        }
    }

    fn sum_cents(&self) -> i64 {
        self.declared_sum_cents
            .unwrap_or_else(|| self.payments.iter().map(|p| p.amount_cents).sum())
    }

    fn header(&self) -> Value {
        json!({
            "status": "PUBLISHED",
            "revision": self.revision,
            "created": instant(self.fdr_date),
            "updated": instant(self.published),
            "fdr": self.fdr,
            "fdrDate": instant(self.fdr_date),
            "regulation": self.regulation,
            "regulationDate": self.regulation_date.to_string(),
            "bicCodePouringBank": "BPPIITRRXXX",
            "sender": {
                "type": "ABI_CODE",
                "id": self.psp_id,
                "pspId": self.psp_id,
                "pspName": "Banca di prova",
                "pspBrokerId": self.psp_id,
                "channelId": format!("{}_01", self.psp_id),
            },
            "receiver": {
                "id": self.organization,
                "organizationId": self.organization,
                "organizationName": "Ente creditore",
            },
            "published": instant(self.published),
            "computedTotPayments": self.payments.len(),
            "computedSumPayments": euro(self.payments.iter().map(|p| p.amount_cents).sum()),
            "totPayments": self.declared_count.unwrap_or(self.payments.len()),
            "sumPayments": euro(self.sum_cents()),
        })
    }

    fn listed(&self) -> Value {
        json!({
            "fdr": self.fdr,
            "pspId": self.psp_id,
            "revision": self.revision,
            "published": instant(self.published),
            "flowDate": instant(self.fdr_date),
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

fn instant(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// What the fake does.
#[derive(Debug)]
pub struct Behaviour {
    /// Subscription keys it accepts; any other is 401.
    pub keys: Vec<String>,
    /// Statuses for the next calls, in order, whatever they are (429 comes with
    /// `Retry-After: 0`).
    pub script: VecDeque<u16>,
    /// (flow id, page): that payments page answers 500 until cleared.
    pub failing_payments_page: Option<(String, u32)>,
    /// A pause before answering each list call.
    pub list_delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            keys: vec![SUBSCRIPTION_KEY.to_owned()],
            script: VecDeque::new(),
            failing_payments_page: None,
            list_delay: Duration::ZERO,
        }
    }
}

/// What a call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// The list of published flows.
    List,
    /// A revision's header.
    Header,
    /// A page of a revision's payments.
    Payments,
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// What it asked for.
    pub kind: CallKind,
    /// The path and query as sent.
    pub target: String,
    /// The status answered.
    pub status: u16,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct FakeFdrState {
    /// Every published revision.
    pub flows: Vec<FakeFlow>,
    /// Every call, in order.
    pub calls: Vec<Call>,
    /// What it does.
    pub behaviour: Behaviour,
}

impl FakeFdrState {
    /// The calls of one kind that were answered 200.
    pub fn answered(&self, kind: CallKind) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.kind == kind && c.status == 200)
            .collect()
    }

    /// Every call of one kind.
    pub fn calls_of(&self, kind: CallKind) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.kind == kind).collect()
    }
}

type Shared = Arc<Mutex<FakeFdrState>>;

fn lock(state: &Shared) -> MutexGuard<'_, FakeFdrState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An `ErrorResponse` answer.
fn error(status: u16, app_code: &str, path: Option<&str>, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut detail = json!({ "message": message });
    if let Some(path) = path {
        detail["path"] = json!(path);
    }
    let body = json!({
        "errorId": uuid::Uuid::new_v4().to_string(),
        "httpStatusCode": status,
        "httpStatusDescription": code.canonical_reason().unwrap_or_default(),
        "appErrorCode": app_code,
        "errors": [detail],
    });
    let mut response = (code, axum::Json(body)).into_response();
    if status == 429 {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("0"),
        );
    }
    response
}

/// A refusal, turned into its `ErrorResponse` at the edge.
#[derive(Debug)]
struct Refusal {
    status: u16,
    app_code: &'static str,
    path: Option<String>,
    message: String,
}

impl Refusal {
    fn response(&self) -> Response {
        error(
            self.status,
            self.app_code,
            self.path.as_deref(),
            &self.message,
        )
    }
}

fn bad_request(path: &str, message: &str) -> Refusal {
    Refusal {
        status: 400,
        app_code: "FDR-0702",
        path: Some(path.to_owned()),
        message: message.to_owned(),
    }
}

/// The query's parameters, percent-decoded.
fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// An `Instant` query parameter as Quarkus reads it.
fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        )
        .ok()
        .map(PrimitiveDateTime::assume_utc)
    })
}

/// `page` and `size`, validated: `Err` is the 400 to answer.
fn paging(params: &[(String, String)], max_size: Option<u64>) -> Result<(u64, u64), Refusal> {
    let page = match param(params, "page") {
        None => 1,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(bad_request(
                    "page",
                    "must be an integer greater than or equal to 1",
                ));
            }
        },
    };
    let size = match param(params, "size") {
        None => 1000,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n >= 1 && max_size.is_none_or(|max| n <= max) => n,
            _ => {
                return Err(bad_request("size", "must be an integer between 1 and 1000"));
            }
        },
    };
    Ok((page, size))
}

fn page_of(items: &[Value], page: u64, size: u64) -> Value {
    let total = u64::try_from(items.len()).unwrap_or(u64::MAX);
    let tot_page = total.div_ceil(size);
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let data: Vec<Value> = items
        .iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .cloned()
        .collect();
    json!({
        "metadata": { "pageSize": size, "pageNumber": page, "totPage": tot_page },
        "count": data.len(),
        "data": data,
    })
}

/// Checks the key and the script; `Err` is the answer, already recorded.
fn admit(
    state: &Shared,
    kind: CallKind,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Box<Response>> {
    let mut s = lock(state);
    let key = headers
        .get("Ocp-Apim-Subscription-Key")
        .and_then(|v| v.to_str().ok());
    let refusal = if !key.is_some_and(|k| s.behaviour.keys.iter().any(|known| known == k)) {
        Some(Refusal {
            status: 401,
            app_code: "FDR-0401",
            path: None,
            message: "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.".to_owned(),
        })
    } else {
        s.behaviour.script.pop_front().map(|status| Refusal {
            status,
            app_code: "FDR-0500",
            path: None,
            message: "scripted failure".to_owned(),
        })
    };
    match refusal {
        Some(refusal) => {
            s.calls.push(Call {
                kind,
                target: uri.to_string(),
                status: refusal.status,
            });
            Err(Box::new(refusal.response()))
        }
        None => Ok(()),
    }
}

fn record(state: &Shared, kind: CallKind, uri: &Uri, response: Response) -> Response {
    lock(state).calls.push(Call {
        kind,
        target: uri.to_string(),
        status: response.status().as_u16(),
    });
    response
}

async fn list(
    State(state): State<Shared>,
    Path(organization): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = admit(&state, CallKind::List, &uri, &headers) {
        return *refusal;
    }
    let delay = lock(&state).behaviour.list_delay;
    tokio::time::sleep(delay).await;
    let answer = list_answer(&state, &organization, &uri).unwrap_or_else(|r| r.response());
    record(&state, CallKind::List, &uri, answer)
}

fn list_answer(state: &Shared, organization: &str, uri: &Uri) -> Result<Response, Refusal> {
    if !(1..=35).contains(&organization.chars().count()) {
        return Err(bad_request("organizationId", "must match ^(.{1,35})$"));
    }
    let params = query(uri);
    let now = OffsetDateTime::now_utc();
    let bound = |name: &str| -> Result<OffsetDateTime, Refusal> {
        match param(&params, name) {
            None => Ok(now - time::Duration::days(30)),
            Some(text) => parse_instant(text).ok_or_else(|| {
                bad_request(
                    name,
                    &format!("'{text}' is not a date-time (yyyy-MM-ddTHH:mm:ss)"),
                )
            }),
        }
    };
    let published_gt = bound("publishedGt")?;
    if published_gt < now - time::Duration::days(30) {
        return Err(bad_request(
            "publishedGt",
            "must not be more than 30 days in the past",
        ));
    }
    let flow_date = bound("flowDate")?;
    let psp = param(&params, "pspId");
    if psp.is_some_and(|p| !(1..=35).contains(&p.chars().count())) {
        return Err(bad_request("pspId", "must match ^(.{1,35})$"));
    }
    let (page, size) = paging(&params, Some(1000))?;
    let s = lock(state);
    let mut latest: Vec<&FakeFlow> = Vec::new();
    for flow in s.flows.iter().filter(|f| f.organization == organization) {
        let newest = s
            .flows
            .iter()
            .filter(|o| {
                o.organization == flow.organization && o.fdr == flow.fdr && o.psp_id == flow.psp_id
            })
            .map(|o| o.revision)
            .max();
        if newest == Some(flow.revision)
            && flow.published > published_gt
            && flow.fdr_date > flow_date
            && psp.is_none_or(|p| p == flow.psp_id)
        {
            latest.push(flow);
        }
    }
    latest.sort_by(|a, b| (a.fdr_date, &a.fdr).cmp(&(b.fdr_date, &b.fdr)));
    let items: Vec<Value> = latest.iter().map(|f| f.listed()).collect();
    Ok((StatusCode::OK, axum::Json(page_of(&items, page, size))).into_response())
}

fn find<'a>(
    s: &'a FakeFdrState,
    organization: &str,
    fdr: &str,
    revision: &str,
    psp: &str,
) -> Result<&'a FakeFlow, Refusal> {
    let revision = match revision.parse::<u32>() {
        Ok(r) if r >= 1 => r,
        _ => {
            return Err(bad_request(
                "revision",
                "must be an integer greater than or equal to 1",
            ));
        }
    };
    s.flows
        .iter()
        .find(|f| {
            f.organization == organization
                && f.fdr == fdr
                && f.revision == revision
                && f.psp_id == psp
        })
        .ok_or_else(|| Refusal {
            status: 404,
            app_code: "FDR-0701",
            path: None,
            message: format!("Reporting flow [{fdr}] revision [{revision}] not found"),
        })
}

async fn header(
    State(state): State<Shared>,
    Path((organization, fdr, revision, psp)): Path<(String, String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = admit(&state, CallKind::Header, &uri, &headers) {
        return *refusal;
    }
    let answer = {
        let s = lock(&state);
        match find(&s, &organization, &fdr, &revision, &psp) {
            Ok(flow) => (StatusCode::OK, axum::Json(flow.header())).into_response(),
            Err(r) => r.response(),
        }
    };
    record(&state, CallKind::Header, &uri, answer)
}

async fn payments(
    State(state): State<Shared>,
    Path((organization, fdr, revision, psp)): Path<(String, String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = admit(&state, CallKind::Payments, &uri, &headers) {
        return *refusal;
    }
    let answer = {
        let s = lock(&state);
        let params = query(&uri);
        match (
            find(&s, &organization, &fdr, &revision, &psp),
            paging(&params, None),
        ) {
            (Err(r), _) | (_, Err(r)) => r.response(),
            (Ok(flow), Ok((page, size))) => {
                let failing = s
                    .behaviour
                    .failing_payments_page
                    .as_ref()
                    .is_some_and(|(f, p)| *f == flow.fdr && u64::from(*p) == page);
                if failing {
                    error(500, "FDR-0500", None, "An unexpected error has occurred.")
                } else {
                    let items: Vec<Value> = flow
                        .payments
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            json!({
                                "index": i + 1,
                                "iuv": p.iuv,
                                "iur": p.iur,
                                "idTransfer": p.id_transfer,
                                "pay": euro(p.amount_cents),
                                "payStatus": p.pay_status,
                                "payDate": instant(p.pay_date),
                            })
                        })
                        .collect();
                    (StatusCode::OK, axum::Json(page_of(&items, page, size))).into_response()
                }
            }
        }
    };
    record(&state, CallKind::Payments, &uri, answer)
}

/// A running fake FdR API.
pub struct FakeFdr {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Shared,
    server: JoinHandle<()>,
}

impl FakeFdr {
    /// Starts the fake on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        let app = axum::Router::new()
            .route("/organizations/{organization}/fdrs", get(list))
            .route(
                "/organizations/{organization}/fdrs/{fdr}/revisions/{revision}/psps/{psp}",
                get(header),
            )
            .route(
                "/organizations/{organization}/fdrs/{fdr}/revisions/{revision}/psps/{psp}/payments",
                get(payments),
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

    /// The base URL to configure incasso with (`INCASSO_FDR_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes a flow revision.
    pub fn publish(&self, flow: FakeFlow) {
        lock(&self.state).flows.push(flow);
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeFdrState) -> T) -> T {
        f(&mut lock(&self.state))
    }
}

impl Drop for FakeFdr {
    fn drop(&mut self) {
        self.server.abort();
    }
}
