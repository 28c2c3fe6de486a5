//! Persistence and use cases of incasso. Every command from outside runs in one database
//! transaction that carries the business change, its idempotency record and (as the ledger
//! and outbox arrive) its ledger entries and outbox events; queries read committed state.
//! The same code runs on PostgreSQL (production) and SQLite (embedded default).
//!
//! [`Store`] is the handle the transports hold: a connection pool, the creditor registry, the
//! keys protecting personal data and the clock.

mod batch;
pub mod citizen_payments;
pub mod citizens;
pub mod creditors;
pub mod db;
pub mod entity;
pub mod error;
pub mod idempotency;
pub mod io_messages;
pub mod ledger;
mod mapping;
pub mod outbox;
mod page_token;
pub mod pii;
pub mod positions;
pub mod receipts;
pub mod reconciliation;
pub mod sequence;
#[cfg(feature = "test-support")]
pub mod testing;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use time::{Date, OffsetDateTime};

use incasso_domain::creditor::CreditorRegistry;
use incasso_domain::rome_time;

pub use error::AppError;
pub use pii::PrivacyKeys;

/// Where the current instant comes from; tests substitute a fixed one.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The most IUVs reconciliation relabels together (the most one statement lists); see
/// [`Store::with_reconciliation_slice`].
pub const MAX_RECONCILIATION_SLICE: usize = reconciliation::IUVS_PER_SLICE;

/// The IUVs reconciliation relabels together unless configured otherwise.
pub const DEFAULT_RECONCILIATION_SLICE: usize = reconciliation::DEFAULT_IUVS_PER_SLICE;

/// The handle on incasso's storage; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    registry: Arc<CreditorRegistry>,
    keys: PrivacyKeys,
    clock: Clock,
    receipt_writer: Option<receipts::writer::WriterHandle>,
    io_scheduling: Arc<io_messages::IoScheduling>,
    citizen_events: bool,
    /// IUVs reconciliation relabels together (see `reconciliation::scope`).
    recon_iuvs_per_slice: usize,
    /// Imports leave plain keys' labels unwritten, composed when read
    /// (`reconciliation::plain`).
    recon_plain_keys_composed: bool,
    /// Creditors set up for reconciliation (a treasury account or OPI code configured): their
    /// receipts are labelled before any import of theirs (`reconciliation::catch_up`).
    recon_configured: Arc<std::collections::BTreeSet<String>>,
    /// When the outbox's statistics were last refreshed (seconds since the epoch), shared
    /// by every handle on this database.
    outbox_analyzed_at: Arc<std::sync::atomic::AtomicU64>,
    /// Bumped after a commit that queued outbox events, so this process's relays claim them
    /// at once instead of at their next poll.
    outbox_queued: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.db.get_database_backend())
            .finish_non_exhaustive()
    }
}

/// Per-creditor settings for notice numbers beyond the registry.
#[derive(Debug, Clone, Default)]
pub struct IuvFloors {
    /// (creditor fiscal code, first IUV base incasso may issue).
    pub floors: Vec<(String, i64)>,
}

impl Store {
    /// Opens the store on a migrated database: mirrors the registry into the `creditor`
    /// tables and makes sure every issuing creditor has its IUV counter.
    pub async fn open(
        db: DatabaseConnection,
        registry: CreditorRegistry,
        keys: PrivacyKeys,
        floors: &IuvFloors,
    ) -> Result<Self, AppError> {
        let store = Self {
            db,
            registry: Arc::new(registry),
            keys,
            clock: Arc::new(OffsetDateTime::now_utc),
            receipt_writer: None,
            io_scheduling: Arc::default(),
            citizen_events: false,
            recon_iuvs_per_slice: reconciliation::DEFAULT_IUVS_PER_SLICE,
            recon_plain_keys_composed: false,
            recon_configured: Arc::default(),
            outbox_analyzed_at: Arc::default(),
            outbox_queued: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        creditors::sync(&store.db, &store.registry, floors, store.now()).await?;
        Ok(store)
    }

    /// The same store with another clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same store relabelling reconciliation's IUVs `iuvs` at a time (clamped to
    /// 1..=[`MAX_RECONCILIATION_SLICE`]; [`DEFAULT_RECONCILIATION_SLICE`] otherwise): fewer
    /// hold less in memory and make more statements. Tests lower it to run a small day through many slices, pages and
    /// queue chunks.
    pub fn with_reconciliation_slice(mut self, iuvs: usize) -> Self {
        self.recon_iuvs_per_slice = iuvs.clamp(1, MAX_RECONCILIATION_SLICE);
        self
    }

    /// IUVs reconciliation relabels together.
    pub(crate) fn recon_iuvs_per_slice(&self) -> usize {
        self.recon_iuvs_per_slice
    }

    /// The same store leaving the labels of plain keys (those a flow alone decides) as their
    /// receipts left them when a flow is imported, composed with their flow when read
    /// (`[reconciliation] plain_keys_composed`). Every release since the one that reads them
    /// so (migration 32) reads such keys right; one before it would read them as `RT_NO_IUF`,
    /// so this is turned on once no such replica serves.
    pub fn with_plain_keys_composed(mut self, composed: bool) -> Self {
        self.recon_plain_keys_composed = composed;
        self
    }

    /// Whether imports leave plain keys' labels unwritten.
    pub(crate) fn recon_plain_keys_composed(&self) -> bool {
        self.recon_plain_keys_composed
    }

    /// The same store taking `creditors` (those with a treasury account or an OPI entity code
    /// configured) as reconciled from the start: their receipts are labelled before their
    /// first import, so a read after the day's receipts shows them `RT_NO_IUF`, and their
    /// history starts from the receipt. Any other creditor's reconciliation begins with its
    /// first import or refresh.
    pub fn with_reconciled_creditors(
        mut self,
        creditors: impl IntoIterator<Item = String>,
    ) -> Self {
        self.recon_configured = Arc::new(creditors.into_iter().collect());
        self
    }

    /// Whether `creditor` is set up for reconciliation in the configuration.
    pub(crate) fn recon_configured(&self, creditor: &str) -> bool {
        self.recon_configured.contains(creditor)
    }

    /// The database connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The creditors incasso knows.
    pub fn registry(&self) -> &CreditorRegistry {
        &self.registry
    }

    /// The keys protecting personal data.
    pub fn keys(&self) -> &PrivacyKeys {
        &self.keys
    }

    /// The current instant, truncated to microseconds: PostgreSQL keeps no more, and a
    /// position returned by a command must equal the same position read back.
    pub fn now(&self) -> OffsetDateTime {
        let now = (self.clock)();
        now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now)
    }

    /// Today in Europe/Rome.
    pub fn today(&self) -> Date {
        rome_time::rome_date(self.now())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), AppError> {
        self.db
            .ping()
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))
    }
}
