//! The incasso server: configuration, wiring and lifecycle. [`Application::build`] connects
//! to the database, applies migrations, opens the store and binds the listeners;
//! [`Application::run_until`] serves until the shutdown future resolves, then drains. The
//! admin listener ([`admin`]) answers probes and scrapes throughout, the drain included. The
//! binary (`main.rs`) only parses the command line and installs telemetry, so tests run
//! the very same application on port 0.

pub mod admin;
pub mod config;
pub mod dev_certs;
pub mod io_config;
pub mod otel;
pub mod report;
pub mod rpc_metrics;
pub mod telemetry;
pub mod tls;
pub mod tls_config;

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use incasso_grpc::access::{AccessLayer, AccessPolicy};
use incasso_grpc::message_size::MessageSizeLayer;
use incasso_grpc::pb::citizen_payments_service_server::CitizenPaymentsServiceServer;
use incasso_grpc::pb::ledger_service_server::LedgerServiceServer;
use incasso_grpc::pb::notice_service_server::NoticeServiceServer;
use incasso_grpc::pb::receipt_service_server::ReceiptServiceServer;
use incasso_grpc::pb::reconciliation_service_server::ReconciliationServiceServer;
use incasso_grpc::{CitizenPaymentsApi, LedgerApi, NoticeApi, ReceiptApi, ReconciliationApi};
use incasso_store::Store;
use incasso_store::db::DatabaseConnection;

pub use config::Settings;

/// The largest gRPC request message incasso reads (tonic's default, made explicit): a debt
/// position is a few kilobytes, and a bulk load is a stream of them, never one message.
/// Larger messages are refused with RESOURCE_EXHAUSTED.
pub const GRPC_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// A built, not yet running, incasso.
pub struct Application {
    grpc_listener: TcpListener,
    soap_listener: TcpListener,
    admin_listener: TcpListener,
    readiness_interval: std::time::Duration,
    ready_on_newer_schema: bool,
    store: Store,
    shutdown_grace: std::time::Duration,
    station: incasso_node::service::StationConfig,
    soap_body_limit_bytes: usize,
    soap_subscription_keys: Vec<String>,
    aca: Option<incasso_relay::aca::AcaConfig>,
    io: Option<incasso_relay::app_io::IoConfig>,
    fascicolo: Option<incasso_relay::fascicolo::FascicoloConfig>,
    fdr: Option<incasso_fdr::FdrConfig>,
    biz_events: Option<incasso_recovery::RecoveryConfig>,
    parked_retry_interval: std::time::Duration,
    recon_catch_up_interval: std::time::Duration,
    treasury_accounts: incasso_store::reconciliation::TreasuryAccounts,
    tls: Option<tls::ServerTls>,
    access: AccessPolicy,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("grpc_addr", &self.grpc_listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Connects to the database and applies pending migrations; used by `incasso migrate` and
/// at start-up.
pub async fn migrate(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let db = incasso_store::db::connect(&settings.database_url, settings.database_max_connections)
        .await?;
    incasso_store::db::migrate(&db).await?;
    Ok(db)
}

/// Connects, migrates and opens the store, without serving: for the CLI's offline commands.
pub async fn open_store(settings: Settings) -> anyhow::Result<Store> {
    let db = migrate(&settings).await?;
    let store = Store::open(db, settings.registry, settings.keys, &settings.iuv_floors)
        .await?
        .with_citizen_events(settings.fascicolo.is_some())
        .with_plain_keys_composed(settings.recon_plain_keys_composed)
        .with_reconciled_creditors(settings.treasury_accounts.creditors());
    Ok(match settings.recon_iuvs_per_slice {
        Some(iuvs) => store.with_reconciliation_slice(iuvs),
        None => store,
    })
}

impl Application {
    /// Connects, migrates, opens the store and binds the gRPC listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.development_keys {
            tracing::warn!(
                "personal data is protected with the publicly known development keys; \
                 set privacy.encryption_key_hex and privacy.fiscal_code_pepper_hex for real data"
            );
        }
        let shutdown_grace = settings.shutdown_grace;
        let station = settings.station.clone();
        let soap_body_limit_bytes = settings.soap_body_limit_bytes;
        let soap_subscription_keys = settings.soap_subscription_keys.clone();
        let soap_listen = settings.soap_listen;
        let aca = settings.aca.clone();
        let io = settings.io.clone();
        let fascicolo = settings.fascicolo.clone();
        let treasury_accounts = settings.treasury_accounts.clone();
        let fdr = settings.fdr.clone();
        let biz_events = settings.biz_events.clone();
        let tls = refuse_open_plaintext(&settings)?;
        let access = settings.access.clone();
        let db = migrate(&settings).await?;
        let mut store = Store::open(db, settings.registry, settings.keys, &settings.iuv_floors)
            .await?
            .with_io_scheduling(io.as_ref().map(|c| c.scheduling()).unwrap_or_default())
            .with_citizen_events(fascicolo.is_some())
            .with_plain_keys_composed(settings.recon_plain_keys_composed)
            .with_reconciled_creditors(treasury_accounts.creditors());
        if let Some(iuvs) = settings.recon_iuvs_per_slice {
            store = store.with_reconciliation_slice(iuvs);
        }
        // Last: the receipt writer books with its own copy of the store.
        let store = store.with_receipt_writer(settings.receipt_writer);
        let parked_retry_interval = settings.parked_retry_interval;
        let recon_catch_up_interval = settings.recon_catch_up_interval;
        let grpc_listener = TcpListener::bind(settings.grpc_listen).await.map_err(|e| {
            anyhow::anyhow!("cannot listen for gRPC on {}: {e}", settings.grpc_listen)
        })?;
        let soap_listener = TcpListener::bind(soap_listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for SOAP on {soap_listen}: {e}"))?;
        let admin_listen = settings.admin_listen;
        let admin_listener = TcpListener::bind(admin_listen).await.map_err(|e| {
            anyhow::anyhow!("cannot listen for the admin endpoints on {admin_listen}: {e}")
        })?;
        Ok(Self {
            grpc_listener,
            soap_listener,
            admin_listener,
            readiness_interval: settings.readiness_interval,
            ready_on_newer_schema: settings.ready_on_newer_schema,
            store,
            shutdown_grace,
            station,
            soap_body_limit_bytes,
            soap_subscription_keys,
            aca,
            io,
            fascicolo,
            fdr,
            biz_events,
            parked_retry_interval,
            recon_catch_up_interval,
            treasury_accounts,
            tls,
            access,
        })
    }

    /// The address gRPC listens on (the real port when configured with port 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The address the paForNode SOAP endpoint listens on.
    pub fn soap_addr(&self) -> SocketAddr {
        self.soap_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The address of the admin listener (`/livez`, `/readyz`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The store, for tests that inspect it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` resolves, then reports itself not ready, stops accepting,
    /// lets in-flight calls and relay rounds finish (for at most the grace period) and
    /// returns. The admin listener answers until the end.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        use tonic::server::NamedService;
        let (health, health_service) = tonic_health::server::health_reporter();
        let health = admin::HealthSync::new(
            health,
            vec![
                <NoticeServiceServer<NoticeApi> as NamedService>::NAME,
                <LedgerServiceServer<LedgerApi> as NamedService>::NAME,
                <ReceiptServiceServer<ReceiptApi> as NamedService>::NAME,
                <CitizenPaymentsServiceServer<CitizenPaymentsApi> as NamedService>::NAME,
                <ReconciliationServiceServer<ReconciliationApi> as NamedService>::NAME,
            ],
        );
        let readiness = admin::Readiness::new(self.store.clone(), self.ready_on_newer_schema);
        // gRPC health is right from the first call, not one interval later.
        health.report(&readiness.check().await).await;
        let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
        let health_task = tokio::spawn(health.clone().run(
            readiness.clone(),
            self.readiness_interval,
            async {
                let _ = health_stopped.await;
            },
        ));
        let admin_addr = self.admin_addr();
        let addr = self.grpc_addr();
        let soap_addr = self.soap_addr();
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_server = axum::serve(
            self.admin_listener,
            admin::router(readiness.clone(), health.clone()),
        )
        .with_graceful_shutdown(async {
            let _ = admin_stopped.await;
        })
        .into_future();
        let admin_task = tokio::spawn(admin_server);
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(incasso_grpc::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(incasso_grpc::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let notices = NoticeServiceServer::new(NoticeApi::new(self.store.clone()))
            .max_decoding_message_size(GRPC_MAX_REQUEST_BYTES);
        let ledger = LedgerServiceServer::new(LedgerApi::new(self.store.clone()))
            .max_decoding_message_size(GRPC_MAX_REQUEST_BYTES);
        let receipts = ReceiptServiceServer::new(ReceiptApi::new(self.store.clone()))
            .max_decoding_message_size(GRPC_MAX_REQUEST_BYTES);
        let citizen_payments =
            CitizenPaymentsServiceServer::new(CitizenPaymentsApi::new(self.store.clone()))
                .max_decoding_message_size(GRPC_MAX_REQUEST_BYTES);
        let reconciliation = ReconciliationServiceServer::new(ReconciliationApi::new(
            self.store.clone(),
            self.treasury_accounts.clone(),
        ))
        .max_decoding_message_size(GRPC_MAX_REQUEST_BYTES);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_soap, soap_stopped) = tokio::sync::oneshot::channel::<()>();
        let node = incasso_node::service::NodeService::new(
            self.store.clone(),
            self.station.clone(),
            incasso_node::xml::Limits::default(),
        );
        let soap_router = incasso_node::http::router_with_keys(
            node,
            self.soap_body_limit_bytes,
            self.soap_subscription_keys.clone(),
        );
        let soap_stopped = async {
            let _ = soap_stopped.await;
        };
        let soap_task = match &self.tls {
            Some(tls) => tokio::spawn(
                axum::serve(tls.soap_incoming(self.soap_listener), soap_router)
                    .with_graceful_shutdown(soap_stopped)
                    .into_future(),
            ),
            // As the TLS listener does: a response written in two pieces must not wait for
            // the Node's delayed acknowledgement of the first (Nagle's algorithm).
            None => tokio::spawn(
                axum::serve(
                    self.soap_listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    }),
                    soap_router,
                )
                .with_graceful_shutdown(soap_stopped)
                .into_future(),
            ),
        };
        let (stop_tls, tls_stopped) = tokio::sync::oneshot::channel::<()>();
        let tls_task = self.tls.clone().map(|tls| {
            tokio::spawn(tls.watch(async {
                let _ = tls_stopped.await;
            }))
        });
        let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
        let relay_task = match self.aca.clone() {
            Some(config) => {
                let relay = incasso_relay::aca::AcaRelay::new(self.store.clone(), config)?;
                Some(tokio::spawn(relay.run(async {
                    let _ = relay_stopped.await;
                })))
            }
            None => {
                tracing::warn!("no ACA URL configured: Stand-In archive events wait in the outbox");
                None
            }
        };
        let (stop_io, io_stopped) = tokio::sync::oneshot::channel::<()>();
        let io_task = match self.io.clone() {
            Some(config) => {
                let relay = incasso_relay::app_io::IoRelay::new(self.store.clone(), config)?;
                Some(tokio::spawn(relay.run(async {
                    let _ = io_stopped.await;
                })))
            }
            None => None,
        };
        let (stop_fascicolo, fascicolo_stopped) = tokio::sync::oneshot::channel::<()>();
        let fascicolo_task = match &self.fascicolo {
            Some(config) => {
                let relay = incasso_relay::fascicolo::relay(self.store.clone(), config)?;
                Some(tokio::spawn(relay.run(async {
                    let _ = fascicolo_stopped.await;
                })))
            }
            None => {
                tracing::info!("no Fascicolo URL configured: no citizen events are queued");
                None
            }
        };
        let (stop_fdr, fdr_stopped) = tokio::sync::oneshot::channel::<()>();
        let fdr_task = match self.fdr.clone() {
            Some(config) => {
                let poller = incasso_fdr::FdrPoller::new(self.store.clone(), config)?;
                Some(tokio::spawn(poller.run(async {
                    let _ = fdr_stopped.await;
                })))
            }
            None => {
                tracing::info!("no FdR URL configured: reporting flows are not polled");
                None
            }
        };
        let (stop_recovery, recovery_stopped) = tokio::sync::oneshot::channel::<()>();
        let recovery_task = match self.biz_events.clone() {
            Some(config) => {
                let recoverer = incasso_recovery::Recoverer::new(self.store.clone(), config)?;
                Some(tokio::spawn(recoverer.run(async {
                    let _ = recovery_stopped.await;
                })))
            }
            None => {
                tracing::info!("no biz-events URL configured: missing receipts are not recovered");
                None
            }
        };
        let (stop_parked, parked_stopped) = tokio::sync::oneshot::channel::<()>();
        let parked_task = {
            let store = self.store.clone();
            let interval = self.parked_retry_interval;
            tokio::spawn(async move {
                store
                    .run_parked_receipt_retries(interval, async {
                        let _ = parked_stopped.await;
                    })
                    .await;
            })
        };
        let (stop_catch_up, catch_up_stopped) = tokio::sync::oneshot::channel::<()>();
        let catch_up_task = {
            let store = self.store.clone();
            let interval = self.recon_catch_up_interval;
            tokio::spawn(async move {
                store
                    .run_reconciliation_catch_up(interval, async {
                        let _ = catch_up_stopped.await;
                    })
                    .await;
            })
        };
        let (stop_sampler, sampler_stopped) = tokio::sync::oneshot::channel::<()>();
        let sampler_task = tokio::spawn(otel::sample_backlog(
            self.store.clone(),
            otel::export_interval(),
            async {
                let _ = sampler_stopped.await;
            },
        ));
        tracing::info!(%soap_addr, path = incasso_node::http::PATH, "incasso paForNode SOAP listening");
        tracing::info!(%addr, "incasso gRPC listening");
        tracing::info!(%admin_addr, "incasso admin listening: /livez /readyz /metrics");
        let router = Server::builder()
            .trace_fn(|request| {
                let span = tracing::info_span!("grpc", method = %request.uri().path());
                // The caller's W3C trace context, if any, is the call's parent.
                incasso_telemetry::propagation::set_parent_from_headers(&span, request.headers());
                span
            })
            // Outside the size layer, so a refusal is counted with the code the caller sees.
            .layer(rpc_metrics::RpcMetricsLayer)
            // Around every route, health and reflection included: an over-size request is
            // RESOURCE_EXHAUSTED whichever service it was for.
            .layer(MessageSizeLayer)
            // Every call is checked here, before any handler runs.
            .layer(AccessLayer::new(self.access.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(notices)
            .add_service(ledger)
            .add_service(receipts)
            .add_service(citizen_payments)
            .add_service(reconciliation);
        let stopped = async {
            let _ = stopped.await;
        };
        type Serving =
            std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
        let mut server: Serving = match &self.tls {
            Some(tls) => Box::pin(
                router.serve_with_incoming_shutdown(tls.grpc_incoming(self.grpc_listener), stopped),
            ),
            None => Box::pin(router.serve_with_incoming_shutdown(
                TcpIncoming::from(self.grpc_listener).with_nodelay(Some(true)),
                stopped,
            )),
        };
        tokio::select! {
            result = &mut server => return result.map_err(Into::into),
            () = shutdown => {}
        }
        tracing::info!(
            grace_seconds = self.shutdown_grace.as_secs(),
            "shutting down: no new calls, finishing the ones in flight"
        );
        // Not ready from now on: load balancers and the kubelet stop sending traffic while
        // what is in flight finishes.
        readiness.shut_down();
        let _ = stop_health.send(());
        let _ = health_task.await;
        health.report(&Err(admin::NotReady::ShuttingDown)).await;
        let _ = stop.send(());
        let _ = stop_soap.send(());
        let _ = stop_relay.send(());
        let _ = stop_io.send(());
        let _ = stop_fascicolo.send(());
        let _ = stop_fdr.send(());
        let _ = stop_recovery.send(());
        let _ = stop_parked.send(());
        let _ = stop_catch_up.send(());
        let _ = stop_tls.send(());
        let _ = stop_sampler.send(());
        // Clients may keep idle connections open for ever; the grace period bounds the drain.
        let drained = async {
            let grpc = server.await;
            let soap = soap_task.await;
            if let Some(relay) = relay_task {
                let _ = relay.await;
            }
            if let Some(io) = io_task {
                let _ = io.await;
            }
            if let Some(relay) = fascicolo_task {
                let _ = relay.await;
            }
            if let Some(poller) = fdr_task {
                let _ = poller.await;
            }
            if let Some(recoverer) = recovery_task {
                let _ = recoverer.await;
            }
            let _ = parked_task.await;
            let _ = catch_up_task.await;
            if let Some(watcher) = tls_task {
                let _ = watcher.await;
            }
            let _ = sampler_task.await;
            (grpc, soap)
        };
        match tokio::time::timeout(self.shutdown_grace, drained).await {
            Ok((grpc, soap)) => {
                grpc?;
                soap??;
            }
            Err(_) => tracing::warn!("grace period over: closing the connections still open"),
        }
        // Probes are answered to the end of the drain; a probe in flight gets a moment more.
        let _ = stop_admin.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), admin_task).await;
        tracing::info!("incasso stopped");
        // The exporters block while they send; the runtime's other threads drive the sending.
        let _ = tokio::task::spawn_blocking(otel::flush).await;
        Ok(())
    }
}

/// The listeners' TLS, loaded; without it, plaintext, which is refused on an address other
/// than loopback unless `--insecure` says the network in between is trusted.
fn refuse_open_plaintext(settings: &Settings) -> anyhow::Result<Option<tls::ServerTls>> {
    if let Some(tls) = &settings.tls {
        let tls = tls::ServerTls::load(tls)?;
        if !tls.authenticates_clients() {
            tracing::warn!(
                "tls.client_ca is not set: gRPC clients are not authenticated and may call everything"
            );
        }
        return Ok(Some(tls));
    }
    for (listener, addr) in [
        ("gRPC", settings.grpc_listen),
        ("SOAP", settings.soap_listen),
    ] {
        if addr.ip().is_loopback() {
            continue;
        }
        anyhow::ensure!(
            settings.insecure,
            "refusing to serve {listener} in plaintext on {addr}, which is not a loopback \
             address: configure [tls] (cert, key, client_ca) or pass --insecure"
        );
        tracing::warn!(%addr, "--insecure: serving {listener} in plaintext on a non-loopback address");
    }
    tracing::warn!(
        "no [tls] configured: gRPC and SOAP are plaintext and every caller may call everything"
    );
    Ok(None)
}
