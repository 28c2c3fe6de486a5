//! The instruments, defined once and recorded once, into two sinks: the OpenTelemetry meter
//! (exported over OTLP when the binary installs a meter provider) and a prometheus-client
//! registry that the admin listener's `/metrics` encodes. Recording into both, rather than
//! converting OpenTelemetry's data to Prometheus text at scrape time, keeps `/metrics` one
//! OpenMetrics document written by one encoder, beside the gauges the admin listener reads
//! from the database, with no second Prometheus library in the build.
//!
//! The OpenTelemetry names follow its conventions (dots, the unit apart: `s`, `{request}`);
//! the Prometheus names follow Prometheus' (`_seconds`, `_total`). Every label value is a
//! name incasso chose, never data a caller sent.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The instrumentation scope every incasso instrument belongs to.
pub const SCOPE: &str = "incasso";

/// Upper bounds of the latency buckets, in seconds: from a cached read (a millisecond) to a
/// call that is about to time out.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    primitive: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassificationLabel {
    classification: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconLabel {
    label: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    topic: String,
    outcome: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECONDS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// incasso's request, receipt, reconciliation and delivery instruments. One per process
/// ([`metrics`]); cheap to record into from any thread.
#[derive(Debug)]
pub struct Metrics {
    rpc_requests: OtelCounter<u64>,
    rpc_duration: OtelHistogram<f64>,
    node_requests: OtelCounter<u64>,
    node_duration: OtelHistogram<f64>,
    receipts: OtelCounter<u64>,
    recon_labels: OtelCounter<u64>,
    deliveries: OtelCounter<u64>,
    prom_rpc_requests: Family<RpcLabels, Counter>,
    prom_rpc_duration: HistogramFamily<RpcLabels>,
    prom_node_requests: Family<NodeLabels, Counter>,
    prom_node_duration: HistogramFamily<NodeLabels>,
    prom_receipts: Family<ClassificationLabel, Counter>,
    prom_recon_labels: Family<ReconLabel, Counter>,
    prom_deliveries: Family<DeliveryLabels, Counter>,
}

/// The process's instruments. The first call binds them to the global meter provider, so the
/// binary installs its provider before anything records.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::new(&opentelemetry::global::meter(SCOPE)))
}

fn latency(meter: &Meter, name: &'static str, description: &'static str) -> OtelHistogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(LATENCY_BUCKETS_SECONDS.to_vec())
        .build()
}

impl Metrics {
    /// Instruments created from `meter`.
    pub fn new(meter: &Meter) -> Self {
        Self {
            rpc_requests: meter
                .u64_counter("incasso.rpc.requests")
                .with_unit("{request}")
                .with_description("gRPC calls answered, by method and status code")
                .build(),
            rpc_duration: latency(
                meter,
                "incasso.rpc.duration",
                "Time to answer a gRPC call, by method and status code",
            ),
            node_requests: meter
                .u64_counter("incasso.node.requests")
                .with_unit("{request}")
                .with_description("paForNode calls answered, by primitive and outcome")
                .build(),
            node_duration: latency(
                meter,
                "incasso.node.duration",
                "Time to answer a paForNode call, by primitive and outcome",
            ),
            receipts: meter
                .u64_counter("incasso.receipts")
                .with_unit("{receipt}")
                .with_description("Receipts delivered by the Node, by classification")
                .build(),
            recon_labels: meter
                .u64_counter("incasso.reconciliation.labels")
                .with_unit("{label}")
                .with_description("Reconciliation labels given to transfers, credits and flows")
                .build(),
            deliveries: meter
                .u64_counter("incasso.relay.deliveries")
                .with_unit("{delivery}")
                .with_description("Outbox deliveries attempted, by topic and outcome")
                .build(),
            prom_rpc_requests: Family::default(),
            prom_rpc_duration: Family::new_with_constructor(latency_histogram),
            prom_node_requests: Family::default(),
            prom_node_duration: Family::new_with_constructor(latency_histogram),
            prom_receipts: Family::default(),
            prom_recon_labels: Family::default(),
            prom_deliveries: Family::default(),
        }
    }

    /// One gRPC call answered: `method` is the path (`/incasso.v1.NoticeService/GetDebtPosition`),
    /// `code` the status code's name (`OK`, `NOT_FOUND`).
    pub fn rpc(&self, method: &str, code: &str, elapsed: Duration) {
        let attributes = [
            KeyValue::new("rpc.method", method.to_owned()),
            KeyValue::new("rpc.grpc.status_code", code.to_owned()),
        ];
        self.rpc_requests.add(1, &attributes);
        self.rpc_duration.record(elapsed.as_secs_f64(), &attributes);
        let labels = RpcLabels {
            method: method.to_owned(),
            code: code.to_owned(),
        };
        self.prom_rpc_requests.get_or_create(&labels).inc();
        self.prom_rpc_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// One paForNode call answered: `primitive` as the Node names it (`paVerifyPaymentNotice`,
    /// `unknown` when the message named none), `outcome` `OK`, `KO` or `SOAP Fault`.
    pub fn node_call(&self, primitive: &str, outcome: &str, elapsed: Duration) {
        let attributes = [
            KeyValue::new("primitive", primitive.to_owned()),
            KeyValue::new("outcome", outcome.to_owned()),
        ];
        self.node_requests.add(1, &attributes);
        self.node_duration
            .record(elapsed.as_secs_f64(), &attributes);
        let labels = NodeLabels {
            primitive: primitive.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.prom_node_requests.get_or_create(&labels).inc();
        self.prom_node_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A receipt the Node delivered, as it was classified (`paid`, `overpaid`, …) or what
    /// happened instead (`redelivered`, `conflict`, `parked`).
    pub fn receipt(&self, classification: &str) {
        self.receipts.add(
            1,
            &[KeyValue::new("classification", classification.to_owned())],
        );
        self.prom_receipts
            .get_or_create(&ClassificationLabel {
                classification: classification.to_owned(),
            })
            .inc();
    }

    /// `count` subjects given reconciliation label `label` (its code, `matched`, …).
    pub fn reconciliation_labels(&self, label: &str, count: u64) {
        self.recon_labels
            .add(count, &[KeyValue::new("label", label.to_owned())]);
        self.prom_recon_labels
            .get_or_create(&ReconLabel {
                label: label.to_owned(),
            })
            .inc_by(count);
    }

    /// One outbox event handed to the system behind `topic`; `outcome` is `delivered`,
    /// `retry` or `dead`.
    pub fn delivery(&self, topic: &str, outcome: &str) {
        self.deliveries.add(
            1,
            &[
                KeyValue::new("topic", topic.to_owned()),
                KeyValue::new("outcome", outcome.to_owned()),
            ],
        );
        self.prom_deliveries
            .get_or_create(&DeliveryLabels {
                topic: topic.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Adds the Prometheus side of every instrument to `registry`; the values stay shared, so
    /// a registry built per scrape shows everything recorded so far.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "incasso_rpc_requests",
            "gRPC calls answered, by method and status code",
            self.prom_rpc_requests.clone(),
        );
        registry.register_with_unit(
            "incasso_rpc_duration",
            "Time to answer a gRPC call, by method and status code",
            Unit::Seconds,
            self.prom_rpc_duration.clone(),
        );
        registry.register(
            "incasso_node_requests",
            "paForNode calls answered, by primitive and outcome",
            self.prom_node_requests.clone(),
        );
        registry.register_with_unit(
            "incasso_node_duration",
            "Time to answer a paForNode call, by primitive and outcome",
            Unit::Seconds,
            self.prom_node_duration.clone(),
        );
        registry.register(
            "incasso_receipts",
            "Receipts delivered by the Node, by classification",
            self.prom_receipts.clone(),
        );
        registry.register(
            "incasso_reconciliation_labels",
            "Reconciliation labels given to transfers, credits and flows, by label",
            self.prom_recon_labels.clone(),
        );
        registry.register(
            "incasso_relay_deliveries",
            "Outbox deliveries attempted, by topic and outcome",
            self.prom_deliveries.clone(),
        );
    }
}
