//! Spans and metrics as an operator's OpenTelemetry collector receives them: the real
//! `incasso` binary, as a child process configured only by the standard `OTEL_*` variables,
//! exports over OTLP/gRPC to a small collector in this test (a tonic server for the OTLP
//! trace and metrics services), and over OTLP/HTTP (protobuf) to an axum one. A gRPC call and paForNode calls that carry a W3C
//! `traceparent` must come back as spans of the caller's trace, nested under the call's span;
//! a reconciliation import's span must nest under its upload; the relay's call to (a fake)
//! ACA must carry the context of its round's span; the
//! request, receipt, backlog and pool metrics must arrive with their units; the same
//! counters must be on the admin `/metrics`; and nothing exported may contain the fiscal codes
//! or names the test used. On PostgreSQL and SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    FlowId, FlowLine, OutcomeCode, ReportingFlow, TransferIndex, TransferKey,
};
use incasso_grpc::pb;
use incasso_grpc::pb::reconciliation_service_client::ReconciliationServiceClient;
use incasso_integration_tests::fake_aca::{FakeAca, SUBSCRIPTION_KEY};
use incasso_integration_tests::node_simulator::{self as node, Caller, element_text, request};
use incasso_integration_tests::process::ServerProcess;
use incasso_integration_tests::requests;
use incasso_reconciliation::testing::fdr_xml;
use incasso_store::testing::{Engine, TestDatabase};
use time::macros::{date, datetime};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_incasso"))
}

/// What the collector received, decoded and as the raw protobuf bytes.
#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    raw: Vec<u8>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let mut received = self.0.lock().unwrap();
        received.raw.extend(request.encode_to_vec());
        received.traces.push(request);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let mut received = self.0.lock().unwrap();
        received.raw.extend(request.encode_to_vec());
        received.metrics.push(request);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// How the server exports.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    fn variable(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

impl Collector {
    /// Serves OTLP over `protocol` on a free port until the test ends.
    async fn start(protocol: Protocol) -> anyhow::Result<(Self, SocketAddr)> {
        match protocol {
            Protocol::Grpc => Self::start_grpc().await,
            Protocol::HttpProtobuf => Self::start_http().await,
        }
    }

    /// OTLP/HTTP with protobuf bodies: `POST /v1/traces` and `POST /v1/metrics`.
    async fn start_http() -> anyhow::Result<(Self, SocketAddr)> {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::routing::post;

        async fn traces(State(collector): State<Collector>, body: Bytes) -> StatusCode {
            let Ok(request) = ExportTraceServiceRequest::decode(body.clone()) else {
                return StatusCode::BAD_REQUEST;
            };
            let mut received = collector.0.lock().unwrap();
            received.raw.extend_from_slice(&body);
            received.traces.push(request);
            StatusCode::OK
        }
        async fn metrics(State(collector): State<Collector>, body: Bytes) -> StatusCode {
            let Ok(request) = ExportMetricsServiceRequest::decode(body.clone()) else {
                return StatusCode::BAD_REQUEST;
            };
            let mut received = collector.0.lock().unwrap();
            received.raw.extend_from_slice(&body);
            received.metrics.push(request);
            StatusCode::OK
        }
        let collector = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = axum::Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(collector.clone());
        tokio::spawn(axum::serve(listener, router).into_future());
        Ok((collector, addr))
    }

    /// OTLP/gRPC: the trace and metrics services.
    async fn start_grpc() -> anyhow::Result<(Self, SocketAddr)> {
        let collector = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        Ok((collector, addr))
    }

    fn spans(&self) -> Vec<Span> {
        let received = self.0.lock().unwrap();
        received
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    fn metrics(&self) -> Vec<Metric> {
        let received = self.0.lock().unwrap();
        received
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.clone())
            .collect()
    }

    fn service_names(&self) -> Vec<String> {
        let received = self.0.lock().unwrap();
        let traces = received
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|r| r.resource.as_ref());
        let metrics = received
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .filter_map(|r| r.resource.as_ref());
        traces
            .chain(metrics)
            .filter_map(|r| string_attribute(&r.attributes, "service.name"))
            .collect()
    }

    /// Everything received, as debug text and as raw bytes read as (lossy) text.
    fn everything(&self) -> String {
        let received = self.0.lock().unwrap();
        format!(
            "{:?}\n{:?}\n{}",
            received.traces,
            received.metrics,
            String::from_utf8_lossy(&received.raw)
        )
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const NODE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const NODE_SPAN: &str = "b7ad6b7169203331";

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// The personal data the test sends: the sample debtor, and the payer of the receipt.
const PERSONAL: [&str; 4] = ["RSSMRA80A01F205X", "Mario Rossi", "Mario", "Rossi"];

async fn spans_and_metrics_reach_the_collector(
    engine: Engine,
    protocol: Protocol,
) -> anyhow::Result<()> {
    let (collector, collector_addr) = Collector::start(protocol).await?;
    let aca = FakeAca::start().await?;
    let database = TestDatabase::create(engine).await?;
    let server = ServerProcess::start_with_env(
        binary(),
        &database.url,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{collector_addr}"),
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                protocol.variable().to_owned(),
            ),
            ("OTEL_SERVICE_NAME", "incasso-under-test".to_owned()),
            ("INCASSO_ACA_URL", aca.base_url()),
            ("INCASSO_ACA_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY.to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".to_owned()),
        ],
    )
    .await?;

    // A gRPC call inside the caller's trace.
    let mut notices = server.notices().await?;
    let mut create = tonic::Request::new(requests::school_fee("otel-fee"));
    create.metadata_mut().insert(
        "traceparent",
        traceparent(CALLER_TRACE, CALLER_SPAN).parse()?,
    );
    let position = notices.create_debt_position(create).await?.into_inner();
    let installment: pb::Installment = position.payment_options[0].installments[0].clone();
    // A refused call is counted with its status code.
    let missing = notices
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(
                "01a241f0-2768-7167-8ac5-619336fbe1cc".to_owned(),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // paForNode calls inside the Node's trace: a verify and the receipt.
    let soap = |action: &'static str, body: String| {
        let addr = server.soap_addr;
        async move {
            request(
                addr,
                "POST",
                "/paForNode",
                &[
                    ("Content-Type", "text/xml; charset=utf-8".to_owned()),
                    ("SOAPAction", format!("\"{action}\"")),
                    ("traceparent", traceparent(NODE_TRACE, NODE_SPAN)),
                ],
                body.as_bytes(),
            )
            .await
        }
    };
    let verify = soap(
        "paVerifyPaymentNotice",
        node::verify(
            &Caller::default(),
            requests::MILANO,
            &installment.notice_number,
        ),
    )
    .await?;
    assert_eq!(
        element_text(&verify.body, "outcome"),
        Some("OK"),
        "{verify:?}"
    );
    let receipt = node::ReceiptSpec::paying(
        &installment,
        "otel-receipt",
        "BCITITMM",
        "2026-11-20T10:15:00",
    );
    let sent = soap(
        "paSendRTV2",
        node::send_rt(&Caller::default(), true, &receipt),
    )
    .await?;
    assert_eq!(element_text(&sent.body, "outcome"), Some("OK"), "{sent:?}");

    // The PSP's reporting flow for the payment, uploaded inside the caller's trace.
    let flow = ReportingFlow {
        flow_id: FlowId::parse("2026-11-24BCITITMM-S000000001")?,
        revision: 0,
        created_at: datetime!(2026-11-24 06:00 UTC),
        psp_id: "BCITITMM".to_owned(),
        trn: "TRN-BCITITMM".to_owned(),
        regulation_date: date!(2026 - 11 - 24),
        total_cents: installment.amount_cents,
        lines: vec![FlowLine {
            key: TransferKey::new(
                Iuv::parse(&installment.iuv)?,
                "otel-receipt",
                TransferIndex::new(1)?,
            )?,
            amount_cents: installment.amount_cents,
            outcome: OutcomeCode::Executed,
            paid_on: date!(2026 - 11 - 20),
        }],
    };
    let mut import = tonic::Request::new(tokio_stream::iter(vec![pb::ImportDocumentRequest {
        file_name: "flow.xml".to_owned(),
        content: fdr_xml(&flow, requests::MILANO).into_bytes(),
    }]));
    import.metadata_mut().insert(
        "traceparent",
        traceparent(CALLER_TRACE, CALLER_SPAN).parse()?,
    );
    let imported = ReconciliationServiceClient::new(server.channel().await?)
        .import_document(import)
        .await?
        .into_inner();
    assert!(imported.label_changes > 0, "{imported:?}");

    // The position goes to ACA (paid by now, so as a closing), with the relay round's trace
    // context.
    let deadline = Instant::now() + Duration::from_secs(30);
    while aca.with(|s| s.calls.is_empty()) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "ACA got nothing: {:?}\n{}",
            aca.with(|s| s.calls.clone()),
            server.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let aca_traceparent = aca
        .with(|s| s.traceparents.first().cloned())
        .expect("the call to ACA carried no traceparent");

    // The same counters, for those who scrape.
    let scraped = request(server.admin_addr, "GET", "/metrics", &[], b"").await?;
    assert_eq!(scraped.status, 200);
    let create_count = scraped
        .body
        .lines()
        .find(|l| {
            l.starts_with("incasso_rpc_requests_total{")
                && l.contains("CreateDebtPosition")
                && l.contains("code=\"OK\"")
        })
        .unwrap_or_else(|| panic!("no CreateDebtPosition count:\n{}", scraped.body));
    assert!(create_count.ends_with(" 1"), "{create_count}");
    for expected in [
        "incasso_rpc_requests_total{method=\"/incasso.v1.NoticeService/GetDebtPosition\",code=\"NOT_FOUND\"} 1",
        "# TYPE incasso_rpc_duration_seconds histogram",
        "incasso_node_requests_total{primitive=\"paVerifyPaymentNotice\",outcome=\"OK\"} 1",
        "incasso_node_requests_total{primitive=\"paSendRTV2\",outcome=\"OK\"} 1",
        "incasso_receipts_total{classification=\"settled\"} 1",
    ] {
        assert!(
            scraped.body.contains(expected),
            "{expected} not on /metrics:\n{}",
            scraped.body
        );
    }

    // SIGTERM: the last spans and metrics are sent on the way out.
    server.stop().await?;
    // Export is asynchronous: wait (bounded) for what the shutdown flushed to be received.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !collector.spans().iter().any(|s| s.name == "paForNode")
        || !collector
            .metrics()
            .iter()
            .any(|m| m.name == "incasso.receipts")
    {
        anyhow::ensure!(Instant::now() < deadline, "nothing exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let spans = collector.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    // The RPC span continues the caller's trace, as a child of the caller's span.
    let grpc = spans
        .iter()
        .find(|s| {
            s.name == "grpc"
                && string_attribute(&s.attributes, "method")
                    .is_some_and(|m| m.ends_with("/CreateDebtPosition"))
        })
        .unwrap_or_else(|| panic!("no span for the gRPC call: {names:?}"));
    assert_eq!(hex::encode(&grpc.trace_id), CALLER_TRACE);
    assert_eq!(hex::encode(&grpc.parent_span_id), CALLER_SPAN);
    // The handler's span nests under it.
    let handler = spans
        .iter()
        .find(|s| s.name == "CreateDebtPosition")
        .unwrap_or_else(|| panic!("no handler span: {names:?}"));
    assert_eq!(handler.trace_id, grpc.trace_id);
    assert_eq!(handler.parent_span_id, grpc.span_id);
    // Each paForNode call continues the Node's trace, with its primitive and outcome.
    let node_spans: Vec<&Span> = spans.iter().filter(|s| s.name == "paForNode").collect();
    let primitives: Vec<Option<String>> = node_spans
        .iter()
        .map(|s| string_attribute(&s.attributes, "primitive"))
        .collect();
    assert!(
        primitives.contains(&Some("paVerifyPaymentNotice".to_owned())),
        "{primitives:?}"
    );
    assert!(
        primitives.contains(&Some("paSendRTV2".to_owned())),
        "{primitives:?}"
    );
    for span in &node_spans {
        assert_eq!(hex::encode(&span.trace_id), NODE_TRACE);
        assert_eq!(hex::encode(&span.parent_span_id), NODE_SPAN);
        assert_eq!(
            string_attribute(&span.attributes, "outcome").as_deref(),
            Some("OK")
        );
    }

    // The import nests under the upload's handler, inside the caller's trace.
    let import_span = spans
        .iter()
        .find(|s| s.name == "reconciliation.import")
        .unwrap_or_else(|| panic!("no import span: {names:?}"));
    let upload = spans
        .iter()
        .find(|s| s.span_id == import_span.parent_span_id)
        .unwrap_or_else(|| panic!("the import span has no exported parent: {names:?}"));
    assert_eq!(upload.name, "ImportDocument");
    assert_eq!(hex::encode(&import_span.trace_id), CALLER_TRACE);

    // The call to ACA continued the relay round's span.
    let delivery = spans
        .iter()
        .find(|s| {
            s.name == "relay.deliver"
                && aca_traceparent
                    == format!(
                        "00-{}-{}-01",
                        hex::encode(&s.trace_id),
                        hex::encode(&s.span_id)
                    )
        })
        .unwrap_or_else(|| panic!("no relay span sent {aca_traceparent}: {names:?}"));
    assert_eq!(
        string_attribute(&delivery.attributes, "topic").as_deref(),
        Some("aca.position")
    );

    // The metrics, with their units.
    let metrics = collector.metrics();
    for (name, unit) in [
        ("incasso.rpc.requests", "{request}"),
        ("incasso.rpc.duration", "s"),
        ("incasso.node.requests", "{request}"),
        ("incasso.node.duration", "s"),
        ("incasso.receipts", "{receipt}"),
        ("incasso.receipts.parked", "{receipt}"),
        ("incasso.outbox.pending", "{event}"),
        ("incasso.outbox.oldest_pending_age", "s"),
        ("incasso.outbox.dead_letters", "{event}"),
        ("incasso.db.pool.connections", "{connection}"),
        ("incasso.relay.deliveries", "{delivery}"),
        ("incasso.reconciliation.labels", "{label}"),
    ] {
        let metric = metrics.iter().find(|m| m.name == name).unwrap_or_else(|| {
            panic!(
                "{name} not exported: {:?}",
                metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
            )
        });
        assert_eq!(metric.unit, unit, "{name}");
    }
    assert!(
        collector
            .service_names()
            .iter()
            .all(|n| n == "incasso-under-test"),
        "{:?}",
        collector.service_names()
    );

    // Nothing exported names the debtor.
    let everything = collector.everything();
    assert!(everything.contains("otel-receipt") || everything.contains("paSendRTV2"));
    for personal in PERSONAL {
        assert!(
            !everything.contains(personal),
            "{personal} was exported:\n{everything}"
        );
    }
    database.drop_database().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_postgres() -> anyhow::Result<()> {
    spans_and_metrics_reach_the_collector(Engine::Postgres, Protocol::Grpc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_sqlite() -> anyhow::Result<()> {
    spans_and_metrics_reach_the_collector(Engine::Sqlite, Protocol::Grpc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_over_http_postgres() -> anyhow::Result<()> {
    spans_and_metrics_reach_the_collector(Engine::Postgres, Protocol::HttpProtobuf).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_over_http_sqlite() -> anyhow::Result<()> {
    spans_and_metrics_reach_the_collector(Engine::Sqlite, Protocol::HttpProtobuf).await
}
