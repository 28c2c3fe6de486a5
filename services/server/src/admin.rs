//! The admin listener: what Kubernetes and Prometheus ask of a replica, on a port of its own
//! (default `127.0.0.1:9090`, `--admin-listen` / `INCASSO_ADMIN_LISTEN`). `/livez` says the
//! process serves HTTP at all; `/readyz` says it should be sent traffic: the database answers
//! a round trip (a ping on a pooled connection) within [`READY_TIMEOUT`] and holds exactly
//! the migrations this binary carries, and the replica is not shutting down. gRPC's `grpc.health.v1.Health` follows the same
//! check ([`HealthSync`]). `/metrics` is Prometheus text whose gauges are read from the
//! database at scrape time, so every replica reports the same backlog, beside this replica's
//! request, receipt and reconciliation counters ([`incasso_telemetry::metrics`]). Nothing here names a
//! citizen, a key or the database URL: the answers go to whoever can reach the port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use incasso_store::Store;
use incasso_store::db::SchemaLevel;

/// The longest a readiness check waits for the database (the `SELECT 1` and the read of the
/// migrations table together). Kubernetes' probe times out after a second more.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a replica should not be sent traffic; the text is what `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// SIGTERM came: the replica finishes what it has and takes nothing new.
    #[error("shutting down")]
    ShuttingDown,
    /// The database refused or dropped the query.
    #[error("database does not answer")]
    DatabaseUnavailable,
    /// The database did not answer in time.
    #[error("database did not answer within {timeout_ms} ms")]
    DatabaseTimeout {
        /// The time allowed.
        timeout_ms: u64,
    },
    /// The database lacks migrations of this binary.
    #[error(
        "database schema is behind this binary: {pending} migrations pending (first {first}); run incasso migrate"
    )]
    SchemaBehind {
        /// How many.
        pending: usize,
        /// The oldest missing.
        first: String,
    },
    /// The database holds migrations this binary does not know.
    #[error(
        "database schema is ahead of this binary: migration {first} unknown ({unknown} in all)"
    )]
    SchemaAhead {
        /// How many.
        unknown: usize,
        /// The first unknown one.
        first: String,
    },
}

/// The readiness check, shared by `/readyz`, the gRPC health status and `/metrics`.
#[derive(Debug, Clone)]
pub struct Readiness {
    store: Store,
    shutting_down: Arc<AtomicBool>,
    ready_on_newer_schema: bool,
}

impl Readiness {
    /// A check against the store's database. With `ready_on_newer_schema`, a schema that a
    /// newer release migrated (additively, as every incasso migration is) still counts as
    /// ready, so the previous release's replicas keep their traffic while a rolling upgrade
    /// replaces them.
    pub fn new(store: Store, ready_on_newer_schema: bool) -> Self {
        Self {
            store,
            shutting_down: Arc::new(AtomicBool::new(false)),
            ready_on_newer_schema,
        }
    }

    /// From now on the replica reports itself not ready, whatever the database says.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Ready, or why not.
    pub async fn check(&self) -> Result<(), NotReady> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(NotReady::ShuttingDown);
        }
        let checked = tokio::time::timeout(READY_TIMEOUT, async {
            self.store.ping().await?;
            incasso_store::db::schema_level(self.store.db()).await
        })
        .await;
        match checked {
            Err(_) => Err(NotReady::DatabaseTimeout {
                timeout_ms: u64::try_from(READY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            }),
            Ok(Err(error)) => {
                // The detail goes to the log, which only operators read; the probe's answer
                // stays generic.
                tracing::debug!(%error, "readiness: the database did not answer");
                Err(NotReady::DatabaseUnavailable)
            }
            Ok(Ok(SchemaLevel::Current)) => Ok(()),
            Ok(Ok(SchemaLevel::Behind { pending })) => Err(NotReady::SchemaBehind {
                pending: pending.len(),
                first: pending.first().cloned().unwrap_or_default(),
            }),
            Ok(Ok(SchemaLevel::Ahead { newer_only, .. }))
                if newer_only && self.ready_on_newer_schema =>
            {
                Ok(())
            }
            Ok(Ok(SchemaLevel::Ahead { unknown, .. })) => Err(NotReady::SchemaAhead {
                unknown: unknown.len(),
                first: unknown.first().cloned().unwrap_or_default(),
            }),
        }
    }
}

/// Keeps `grpc.health.v1.Health` in step with [`Readiness`]: the overall status (`""`) and
/// each incasso service are SERVING exactly when the replica is ready.
#[derive(Clone)]
pub struct HealthSync {
    reporter: HealthReporter,
    services: Vec<&'static str>,
    last: Arc<std::sync::Mutex<Option<bool>>>,
}

impl std::fmt::Debug for HealthSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthSync")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl HealthSync {
    /// Reports through `reporter` for `services` (their full gRPC names) and the server.
    pub fn new(reporter: HealthReporter, services: Vec<&'static str>) -> Self {
        Self {
            reporter,
            services,
            last: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Reports the outcome of a readiness check; a change is logged once.
    pub async fn report(&self, readiness: &Result<(), NotReady>) {
        let serving = readiness.is_ok();
        let changed = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *last != Some(serving);
            *last = Some(serving);
            changed
        };
        if !changed {
            return;
        }
        match readiness {
            Ok(()) => tracing::info!("ready: gRPC health SERVING"),
            Err(reason) => tracing::warn!(%reason, "not ready: gRPC health NOT_SERVING"),
        }
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(*service, status).await;
        }
    }

    /// Checks every `interval` and reports, until `stop` resolves.
    pub async fn run(
        self,
        readiness: Readiness,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            self.report(&readiness.check().await).await;
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[derive(Clone)]
struct AdminState {
    readiness: Readiness,
    health: HealthSync,
}

/// The admin routes: `/livez`, `/readyz` and `/metrics`.
pub fn router(readiness: Readiness, health: HealthSync) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { readiness, health })
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let readiness = state.readiness.check().await;
    state.health.report(&readiness).await;
    match readiness {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

/// A topic's label: topics are incasso's own names, never data.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

/// The version label of `incasso_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let gauge: Gauge = Gauge::default();
    gauge.set(value);
    registry.register(name, help, gauge);
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads the gauges from the database and encodes them. What cannot be read in time is left
/// out, and `incasso_database_up` says so: the pool gauges still come, they matter most then.
async fn metrics(State(state): State<AdminState>) -> Response {
    let store = &state.readiness.store;
    let mut registry = Registry::default();
    let info: Family<BuildLabel, Gauge> = Family::default();
    info.get_or_create(&BuildLabel {
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
    .set(1);
    registry.register(
        "incasso_build_info",
        "The running incasso's version (always 1)",
        info,
    );
    let readiness = state.readiness.check().await;
    state.health.report(&readiness).await;
    gauge(
        &mut registry,
        "incasso_ready",
        "1 when the replica is ready (as /readyz), 0 otherwise",
        i64::from(readiness.is_ok()),
    );
    let pool = incasso_store::db::pool_connections(store.db());
    gauge(
        &mut registry,
        "incasso_db_pool_connections",
        "Database connections open in this replica's pool, idle or in use",
        i64::from(pool.open),
    );
    gauge(
        &mut registry,
        "incasso_db_pool_idle_connections",
        "Open database connections nobody is using",
        i64::from(pool.idle),
    );
    gauge(
        &mut registry,
        "incasso_db_pool_max_connections",
        "The most connections this replica's pool opens",
        i64::from(pool.max),
    );
    let read = tokio::time::timeout(READY_TIMEOUT, async {
        let parked = store.count_parked_receipts().await?;
        let backlog = store.outbox_backlog().await?;
        Ok::<_, incasso_store::AppError>((parked, backlog))
    })
    .await;
    let database_up = match read {
        Ok(Ok((parked, backlog))) => {
            gauge(
                &mut registry,
                "incasso_receipts_parked",
                "Receipts acknowledged to the Node whose booking failed and is being retried",
                count(parked),
            );
            let pending: Family<TopicLabel, Gauge> = Family::default();
            let age: Family<TopicLabel, Gauge> = Family::default();
            let dead: Family<TopicLabel, Gauge> = Family::default();
            for topic in backlog {
                let label = TopicLabel {
                    topic: topic.topic.clone(),
                };
                pending.get_or_create(&label).set(count(topic.pending));
                age.get_or_create(&label)
                    .set(count(topic.oldest_pending_age_seconds));
                dead.get_or_create(&label).set(count(topic.dead));
            }
            registry.register(
                "incasso_outbox_pending_events",
                "Outbox events waiting for delivery (due, retrying or scheduled), by topic",
                pending,
            );
            registry.register(
                "incasso_outbox_oldest_pending_age_seconds",
                "How long the longest-waiting outbox event has waited, by topic",
                age,
            );
            registry.register(
                "incasso_outbox_dead_letters",
                "Outbox events given up on until an operator replays them, by topic",
                dead,
            );
            1
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "metrics: the database did not answer");
            0
        }
        Err(_) => 0,
    };
    gauge(
        &mut registry,
        "incasso_database_up",
        "1 when the database answered this scrape's queries in time",
        database_up,
    );
    // The request, receipt, reconciliation and delivery instruments, recorded as they happen
    // in this replica (the same values OTLP exports).
    incasso_telemetry::metrics().register(&mut registry);
    let mut text = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}
