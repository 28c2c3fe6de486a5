//! Connecting to the database and applying migrations. PostgreSQL is the production engine;
//! SQLite is the embedded default for a single node. SQLite gets one connection: it has one
//! writer anyway, and a single connection rules out the lock-upgrade deadlocks of concurrent
//! deferred transactions. Its journal is WAL with `synchronous = FULL`, because an
//! acknowledged receipt must survive a power cut.
//!
//! Two bounds keep one stuck party from stalling the others. A connection is waited for at most
//! [`ACQUIRE_TIMEOUT`], less than the 15 s the PagoPA Node waits for an answer, so a receipt
//! that cannot get one is answered `PAA_SYSTEM_ERROR` (the Node retries) instead of timing out.
//! On PostgreSQL a session idle inside a transaction for [`IDLE_IN_TRANSACTION`] is ended by
//! the server: a replica frozen mid-batch (a VM pause, SIGSTOP) would otherwise hold its
//! positions' and the ledger head's row locks until TCP keepalive noticed, and every other
//! replica's receipts would wait behind it. incasso never leaves a transaction idle: each one
//! runs its statements back to back and commits.
//!
//! PostgreSQL's JIT compilation is off for incasso's sessions: its statements are short OLTP
//! ones, and a plan whose estimate crosses `jit_above_cost` (an outbox claim over a large
//! queue, say) spent more time compiling (tens of milliseconds) than executing.

use std::time::Duration;

pub use sea_orm::DatabaseConnection;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use crate::error::AppError;

/// The longest wait for a pooled connection.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pooled connection may sit idle before it is pinged on its next use.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);

/// How long PostgreSQL lets a session sit idle inside a transaction before ending it.
pub const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(20);

/// Connects to `url` (`postgres://...` or `sqlite://...`).
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, AppError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection idle for a while may have been closed by the server or a proxy:
        // pinged before use. A busy one is not, because the ping is a round trip before
        // every transaction (about 0.5 ms of a receipt batch's 18 under load); a connection
        // lost meanwhile fails its first statement, a transient error that callers retry.
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
    if url.starts_with("sqlite:") {
        options
            .max_connections(1)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
            });
    } else {
        let idle = format!("{}ms", IDLE_IN_TRANSACTION.as_millis());
        options
            .max_connections(max_connections.max(2))
            .map_sqlx_postgres_opts(move |opts| {
                opts.options([
                    ("idle_in_transaction_session_timeout", idle.as_str()),
                    ("jit", "off"),
                ])
            });
    }
    Database::connect(options)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot connect to the database: {e}")))
}

/// Applies every pending migration. On PostgreSQL the migrations run inside one transaction
/// holding an advisory lock, so replicas starting together migrate once, one after another.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), AppError> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7243661090)")
                .await?;
            incasso_migrations::Migrator::up(&txn, None).await?;
            txn.commit().await?;
        }
        _ => incasso_migrations::Migrator::up(db, None).await?,
    }
    Ok(())
}

/// Where the database's schema stands against the migrations this binary carries: a replica
/// serves only a schema it was built for, neither one migration short nor one ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaLevel {
    /// Every migration of the binary is applied, and no other.
    Current,
    /// The binary's migrations the database lacks (`incasso migrate` applies them),
    /// whether or not it also holds migrations the binary does not know.
    Behind {
        /// Their names, oldest first.
        pending: Vec<String>,
    },
    /// Migrations applied to the database that this binary does not know: a newer release
    /// migrated it, or another branch did.
    Ahead {
        /// Their names, in the database's order.
        unknown: Vec<String>,
        /// True when every unknown migration sorts after the binary's newest (migration
        /// names start with their date): a newer release's, not another branch's.
        newer_only: bool,
    },
}

/// Compares the applied migrations (the `seaql_migrations` table) with the binary's list.
/// It only reads: unlike sea-orm-migration's status calls it never creates the table.
pub async fn schema_level(db: &DatabaseConnection) -> Result<SchemaLevel, AppError> {
    use sea_orm::{EntityTrait, QueryOrder};
    use sea_orm_migration::seaql_migrations;
    let applied: Vec<String> = seaql_migrations::Entity::find()
        .order_by_asc(seaql_migrations::Column::Version)
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    let known: Vec<String> = incasso_migrations::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let pending: Vec<String> = known
        .iter()
        .filter(|name| !applied.contains(name))
        .cloned()
        .collect();
    // A missing migration comes first: whatever else the database holds, this binary's
    // queries may need the missing one.
    if !pending.is_empty() {
        return Ok(SchemaLevel::Behind { pending });
    }
    let unknown: Vec<String> = applied
        .iter()
        .filter(|v| !known.contains(v))
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok(SchemaLevel::Current);
    }
    let newest_known = known.iter().max();
    let newer_only = unknown.iter().all(|v| Some(v) > newest_known);
    Ok(SchemaLevel::Ahead {
        unknown,
        newer_only,
    })
}

/// The connection pool as it stands: open connections and how many of them are idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConnections {
    /// Connections open now, idle or in use.
    pub open: u32,
    /// Open connections nobody is using.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// The pool's connections now (no query is made).
pub fn pool_connections(db: &DatabaseConnection) -> PoolConnections {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            PoolConnections {
                open: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: pool.options().get_max_connections(),
            }
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            PoolConnections {
                open: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: pool.options().get_max_connections(),
            }
        }
    }
}
