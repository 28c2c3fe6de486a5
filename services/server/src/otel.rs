//! The OpenTelemetry pipelines: spans (through `tracing-opentelemetry`) and metrics (the
//! instruments of [`incasso_telemetry::metrics`] and the gauges below) exported over OTLP,
//! configured only by the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (nothing is
//! exported without it), `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, the default, or
//! `http/protobuf`), `OTEL_SERVICE_NAME` (default `incasso`), `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, and the rest the exporter reads (`*_TIMEOUT`, `*_HEADERS`,
//! the per-signal endpoints).
//!
//! The backlog gauges (parked receipts, outbox depth, age and dead letters per topic) are
//! read from the database, which an instrument's callback cannot await: [`sample_backlog`]
//! reads them on the metric export interval into a snapshot the callbacks report.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use incasso_store::Store;
use incasso_store::outbox::TopicBacklog;

/// The variable whose presence turns export on.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The variable naming the transport.
pub const PROTOCOL_VAR: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

/// The installed pipelines. [`Otel::shutdown`] sends what is still buffered.
#[derive(Debug)]
pub struct Otel {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

fn protocol() -> anyhow::Result<Protocol> {
    match std::env::var(PROTOCOL_VAR) {
        Err(_) => Ok(Protocol::Grpc),
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "" | "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            _ => anyhow::bail!("{PROTOCOL_VAR}: '{value}' is not grpc or http/protobuf"),
        },
    }
}

fn resource() -> Resource {
    let builder = Resource::builder();
    // The SDK reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; only its fallback
    // (`unknown_service`) is replaced.
    let builder = if std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty()) {
        builder
    } else {
        builder.with_service_name("incasso")
    };
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The OTLP/HTTP client: hyper, driven on the runtime that built it. The exporters send from
/// threads of their own, where hyper (which needs a tokio reactor) cannot run; each request
/// is handed to the runtime and awaited from there.
#[derive(Debug)]
struct OnRuntime {
    runtime: tokio::runtime::Handle,
    client: Arc<opentelemetry_http::hyper::HyperClient>,
}

impl OnRuntime {
    fn new() -> anyhow::Result<Self> {
        let timeout_ms = std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .unwrap_or(10_000);
        Ok(Self {
            runtime: tokio::runtime::Handle::try_current().map_err(|_| {
                anyhow::anyhow!("OTLP over HTTP needs the tokio runtime to be running")
            })?,
            client: Arc::new(
                opentelemetry_http::hyper::HyperClient::with_default_connector(
                    Duration::from_millis(timeout_ms),
                    None,
                ),
            ),
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = Arc::clone(&self.client);
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

/// Whoever set the global providers last; [`flush`] pushes their buffers out.
static INSTALLED: OnceLock<(SdkTracerProvider, SdkMeterProvider)> = OnceLock::new();

impl Otel {
    /// The pipelines the environment asks for, installed as the global providers; `None`
    /// without `OTEL_EXPORTER_OTLP_ENDPOINT`. A protocol incasso does not speak is an error
    /// naming the variable.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        if std::env::var(ENDPOINT_VAR).map_or(true, |v| v.trim().is_empty()) {
            return Ok(None);
        }
        let (spans, metrics) = match protocol()? {
            Protocol::Grpc => (
                SpanExporter::builder().with_tonic().build(),
                MetricExporter::builder().with_tonic().build(),
            ),
            Protocol::HttpProtobuf => (
                SpanExporter::builder()
                    .with_http()
                    .with_http_client(OnRuntime::new()?)
                    .build(),
                MetricExporter::builder()
                    .with_http()
                    .with_http_client(OnRuntime::new()?)
                    .build(),
            ),
        };
        let spans =
            spans.map_err(|e| anyhow::anyhow!("{ENDPOINT_VAR}: cannot export spans: {e}"))?;
        let metrics =
            metrics.map_err(|e| anyhow::anyhow!("{ENDPOINT_VAR}: cannot export metrics: {e}"))?;
        let resource = resource();
        let tracer_provider = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_periodic_exporter(metrics)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
        opentelemetry::global::set_meter_provider(meter_provider.clone());
        let _ = INSTALLED.set((tracer_provider.clone(), meter_provider.clone()));
        Ok(Some(Self {
            tracer_provider,
            meter_provider,
        }))
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer_provider.tracer("incasso"))
    }

    /// Sends what is buffered and stops the exporters.
    pub fn shutdown(self) {
        if let Err(error) = self.tracer_provider.shutdown() {
            eprintln!("OpenTelemetry: spans not all sent: {error}");
        }
        if let Err(error) = self.meter_provider.shutdown() {
            eprintln!("OpenTelemetry: metrics not all sent: {error}");
        }
    }
}

/// Sends the spans and metrics buffered so far, if a pipeline is installed: at the end of a
/// drain, so that what the last calls did is not lost with the process.
pub fn flush() {
    if let Some((tracer_provider, meter_provider)) = INSTALLED.get() {
        let _ = tracer_provider.force_flush();
        let _ = meter_provider.force_flush();
    }
}

/// How often metrics are exported: `OTEL_METRIC_EXPORT_INTERVAL` milliseconds, as the SDK
/// reads it (default a minute); the backlog gauges are read from the database as often.
pub fn export_interval() -> Duration {
    std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

/// Whether OTLP export is on.
pub fn enabled() -> bool {
    INSTALLED.get().is_some()
}

/// The backlog as last read from the database.
#[derive(Debug, Default)]
struct Backlog {
    parked: Option<u64>,
    topics: Vec<TopicBacklog>,
}

fn count(value: u32) -> u64 {
    u64::from(value)
}

/// Registers the gauges read from the database and the pool, and keeps them fresh until
/// `stop` resolves. Does nothing unless OTLP export is on: `/metrics` reads the same
/// values at scrape time.
pub async fn sample_backlog(
    store: Store,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    if !enabled() {
        return;
    }
    let meter = opentelemetry::global::meter(incasso_telemetry::metrics::SCOPE);
    let backlog = Arc::new(Mutex::new(Backlog::default()));
    let pool_store = store.clone();
    let _pool = meter
        .u64_observable_gauge("incasso.db.pool.connections")
        .with_unit("{connection}")
        .with_description("Database connections of this replica's pool, by state (open, idle, max)")
        .with_callback(move |observer| {
            let pool = incasso_store::db::pool_connections(pool_store.db());
            observer.observe(count(pool.open), &[KeyValue::new("state", "open")]);
            observer.observe(count(pool.idle), &[KeyValue::new("state", "idle")]);
            observer.observe(count(pool.max), &[KeyValue::new("state", "max")]);
        })
        .build();
    let parked = Arc::clone(&backlog);
    let _parked = meter
        .u64_observable_gauge("incasso.receipts.parked")
        .with_unit("{receipt}")
        .with_description(
            "Receipts acknowledged to the Node whose booking failed and is being retried",
        )
        .with_callback(move |observer| {
            let backlog = parked.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = backlog.parked {
                observer.observe(count, &[]);
            }
        })
        .build();
    let pending = Arc::clone(&backlog);
    let _pending = meter
        .u64_observable_gauge("incasso.outbox.pending")
        .with_unit("{event}")
        .with_description("Outbox events waiting for delivery, by topic")
        .with_callback(move |observer| {
            let backlog = pending.lock().unwrap_or_else(PoisonError::into_inner);
            for topic in &backlog.topics {
                observer.observe(
                    topic.pending,
                    &[KeyValue::new("topic", topic.topic.clone())],
                );
            }
        })
        .build();
    let age = Arc::clone(&backlog);
    let _age = meter
        .u64_observable_gauge("incasso.outbox.oldest_pending_age")
        .with_unit("s")
        .with_description("How long the longest-waiting outbox event has waited, by topic")
        .with_callback(move |observer| {
            let backlog = age.lock().unwrap_or_else(PoisonError::into_inner);
            for topic in &backlog.topics {
                observer.observe(
                    topic.oldest_pending_age_seconds,
                    &[KeyValue::new("topic", topic.topic.clone())],
                );
            }
        })
        .build();
    let dead = Arc::clone(&backlog);
    let _dead = meter
        .u64_observable_gauge("incasso.outbox.dead_letters")
        .with_unit("{event}")
        .with_description("Outbox events given up on until an operator replays them, by topic")
        .with_callback(move |observer| {
            let backlog = dead.lock().unwrap_or_else(PoisonError::into_inner);
            for topic in &backlog.topics {
                observer.observe(topic.dead, &[KeyValue::new("topic", topic.topic.clone())]);
            }
        })
        .build();
    tokio::pin!(stop);
    loop {
        let read = tokio::time::timeout(crate::admin::READY_TIMEOUT, async {
            let parked = store.count_parked_receipts().await?;
            let topics = store.outbox_backlog().await?;
            Ok::<_, incasso_store::AppError>((parked, topics))
        })
        .await;
        {
            let mut backlog = backlog.lock().unwrap_or_else(PoisonError::into_inner);
            match read {
                Ok(Ok((parked, topics))) => {
                    backlog.parked = Some(parked);
                    backlog.topics = topics;
                }
                // Stale values would look like a healthy backlog: report none until the
                // database answers again.
                _ => *backlog = Backlog::default(),
            }
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
