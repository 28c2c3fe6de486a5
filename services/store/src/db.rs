//! Connecting to the database and applying migrations. PostgreSQL is the production engine;
//! SQLite is the embedded default for a single node. SQLite gets one connection: it has one
//! writer anyway, and a single connection rules out the lock-upgrade deadlocks of concurrent
//! deferred transactions. Its journal is WAL with `synchronous = FULL`, because an
//! acknowledged receipt must survive a power cut.

use std::time::Duration;

pub use sea_orm::DatabaseConnection;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use crate::error::AppError;

/// Connects to `url` (`postgres://...` or `sqlite://...`).
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, AppError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30));
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
        options.max_connections(max_connections.max(2));
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
