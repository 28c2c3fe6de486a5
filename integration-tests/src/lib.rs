//! The end-to-end harness: [`TestApp::spawn`] starts the real incasso application on port 0
//! against a fresh database (SQLite file or a new PostgreSQL database) and hands back tonic
//! clients connected to it over a real socket; [`TestApp::stop`] shuts it down as SIGTERM
//! would and drops the database.

pub mod bench;
pub mod certs;
pub mod fake_aca;
pub mod fake_biz_events;
pub mod fake_fascicolo;
pub mod fake_fdr;
pub mod fake_io;
pub mod node_simulator;
pub mod process;
pub mod receipt_load;
pub mod recon_day;
pub mod requests;

use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use incasso_grpc::pb::citizen_payments_service_client::CitizenPaymentsServiceClient;
use incasso_grpc::pb::ledger_service_client::LedgerServiceClient;
use incasso_grpc::pb::notice_service_client::NoticeServiceClient;
use incasso_grpc::pb::receipt_service_client::ReceiptServiceClient;
use incasso_grpc::pb::reconciliation_service_client::ReconciliationServiceClient;
use incasso_server::Application;
use incasso_server::config::{FileConfig, Overrides, Settings};
pub use incasso_store::testing::Engine;
use incasso_store::testing::TestDatabase;

/// How long one step of starting or stopping the application may take: far above what any
/// step takes on a loaded machine, so that a step that hangs fails its test, named, instead
/// of holding the run.
const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// `step` within [`STEP_TIMEOUT`], or an error naming it.
async fn bounded<T>(what: &str, step: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, step)
        .await
        .map_err(|_| anyhow::anyhow!("{what} took more than {STEP_TIMEOUT:?}"))
}

/// A running incasso on a fresh database.
pub struct TestApp {
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// Where the paForNode SOAP endpoint listens.
    pub soap_addr: SocketAddr,
    /// Where the admin listener (`/livez`, `/readyz`, `/metrics`) listens.
    pub admin_addr: SocketAddr,
    /// The database URL the server uses.
    pub database_url: String,
    /// The server's store, for tests that look inside.
    pub store: incasso_store::Store,
    database: Option<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts incasso with the default (sample Milan) configuration.
    pub async fn spawn(engine: Engine) -> anyhow::Result<Self> {
        Self::spawn_with(engine, |_| {}).await
    }

    /// Starts incasso after `customize` has adjusted the settings.
    pub async fn spawn_with(
        engine: Engine,
        customize: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        Self::spawn_configured(engine, FileConfig::default(), customize).await
    }

    /// Starts incasso with a configuration file's contents (`[tls]`, `[[clients]]`, ...),
    /// on port 0 and a fresh database, after `customize` has adjusted the settings.
    pub async fn spawn_configured(
        engine: Engine,
        file: FileConfig,
        customize: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let database =
            bounded("creating the test database", TestDatabase::create(engine)).await??;
        let built = async {
            let mut settings = Settings::resolve(
                file,
                Overrides {
                    database_url: Some(database.url.clone()),
                    grpc_listen: Some("127.0.0.1:0".to_owned()),
                    soap_listen: Some("127.0.0.1:0".to_owned()),
                    admin_listen: Some("127.0.0.1:0".to_owned()),
                    ..Overrides::default()
                },
            )?;
            // The background catch-up would relabel receipts whenever its interval fell, so
            // a key's history would depend on how fast the test ran; reads catch up anyway.
            // A test of the background task sets its own interval.
            settings.recon_catch_up_interval = std::time::Duration::from_secs(3600);
            customize(&mut settings);
            Application::build(settings).await
        };
        let built = bounded("building the application (migrations included)", built).await?;
        let app = match built {
            Ok(app) => app,
            Err(error) => {
                // A test that expects the start to be refused leaves no database behind.
                database.drop_database().await?;
                return Err(error);
            }
        };
        let store = app.store().clone();
        let grpc_addr = app.grpc_addr();
        let soap_addr = app.soap_addr();
        let admin_addr = app.admin_addr();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Ok(Self {
            grpc_addr,
            soap_addr,
            admin_addr,
            database_url: database.url.clone(),
            store,
            database: Some(database),
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// A channel to the server.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.grpc_addr))?
            .connect()
            .await?)
    }

    /// A NoticeService client.
    pub async fn notices(&self) -> anyhow::Result<NoticeServiceClient<Channel>> {
        Ok(NoticeServiceClient::new(self.channel().await?))
    }

    /// A LedgerService client.
    pub async fn ledger(&self) -> anyhow::Result<LedgerServiceClient<Channel>> {
        Ok(LedgerServiceClient::new(self.channel().await?))
    }

    /// A ReceiptService client.
    pub async fn receipts(&self) -> anyhow::Result<ReceiptServiceClient<Channel>> {
        Ok(ReceiptServiceClient::new(self.channel().await?))
    }

    /// A ReconciliationService client.
    pub async fn reconciliation(&self) -> anyhow::Result<ReconciliationServiceClient<Channel>> {
        Ok(ReconciliationServiceClient::new(self.channel().await?))
    }

    /// A CitizenPaymentsService client.
    pub async fn citizen_payments(&self) -> anyhow::Result<CitizenPaymentsServiceClient<Channel>> {
        Ok(CitizenPaymentsServiceClient::new(self.channel().await?))
    }

    /// The gRPC services the server reports serving (health) and lists (reflection), for
    /// `service` (e.g. `incasso.v1.ReceiptService`): whether health says SERVING, and every
    /// service name reflection lists.
    pub async fn health_and_reflection(
        &self,
        service: &str,
    ) -> anyhow::Result<(bool, Vec<String>)> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::health_client::HealthClient;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

        let channel = self.channel().await?;
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?
            .into_inner()
            .status;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner();
        let response = responses
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("no reflection response"))?;
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            anyhow::bail!("unexpected reflection response");
        };
        Ok((
            status == ServingStatus::Serving as i32,
            list.service.into_iter().map(|s| s.name).collect(),
        ))
    }

    /// A direct connection to the server's database, as an operator (or an attacker) has.
    pub async fn database(&self) -> anyhow::Result<incasso_store::db::DatabaseConnection> {
        Ok(incasso_store::db::connect(&self.database_url, 2).await?)
    }

    /// A second replica's store on the server's database, with its own pool: for a second
    /// relay competing with the server's.
    pub async fn replica(&self) -> anyhow::Result<incasso_store::Store> {
        let db = incasso_store::db::connect(&self.database_url, 4).await?;
        Ok(incasso_store::Store::open(
            db,
            self.store.registry().clone(),
            incasso_store::PrivacyKeys::development(),
            &incasso_store::IuvFloors::default(),
        )
        .await?)
    }

    /// Runs `sql` on the server's database, as an operator would; returns the rows changed.
    pub async fn execute_sql(&self, sql: &str) -> anyhow::Result<u64> {
        use sea_orm::ConnectionTrait;
        let db = self.database().await?;
        let done = db.execute_unprepared(sql).await?;
        db.close().await?;
        Ok(done.rows_affected())
    }

    /// The first column of the first row of `sql` (a count, typically).
    pub async fn query_i64(&self, sql: &str) -> anyhow::Result<i64> {
        use sea_orm::{ConnectionTrait, Statement};
        let db = self.database().await?;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row: {sql}"))?;
        db.close().await?;
        Ok(row.try_get_by_index(0)?)
    }

    /// Shuts the server down gracefully, waits for it and drops the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            bounded("stopping the application", server).await???;
        }
        if let Some(database) = self.database.take() {
            bounded("dropping the test database", database.drop_database()).await??;
        }
        Ok(())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
