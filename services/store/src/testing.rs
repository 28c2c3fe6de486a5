//! Test support (feature `test-support`): a fresh, migrated database per test on either
//! engine, and the sample creditor registry. PostgreSQL tests create their own database on
//! the server named by `INCASSO_TEST_PG_URL` (default: the local server, user postgres), so
//! tests never share state and can run in parallel.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

use crate::error::AppError;

/// The admin URL of the PostgreSQL server tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("INCASSO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The two engines every storage test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// An SQLite file in the temporary directory.
    Sqlite,
    /// A new database on the test PostgreSQL server.
    Postgres,
}

/// A database created for one test; [`TestDatabase::drop_database`] removes it.
#[derive(Debug)]
pub struct TestDatabase {
    /// Connect here.
    pub url: String,
    engine: Engine,
    name: String,
}

impl TestDatabase {
    /// Creates an empty database (not migrated).
    pub async fn create(engine: Engine) -> Result<Self, AppError> {
        let name = format!("incasso_test_{}", Uuid::new_v4().simple());
        let url = match engine {
            Engine::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                format!("sqlite://{}?mode=rwc", path.display())
            }
            Engine::Postgres => {
                let admin_url = postgres_admin_url();
                let admin = Database::connect(&admin_url).await.map_err(|e| {
                    AppError::Unavailable(format!(
                        "PostgreSQL for tests is not reachable at {admin_url} \
                         (set INCASSO_TEST_PG_URL): {e}"
                    ))
                })?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await?;
                admin.close().await?;
                match admin_url.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => return Err(AppError::Internal("bad INCASSO_TEST_PG_URL".into())),
                }
            }
        };
        Ok(Self { url, engine, name })
    }

    /// Creates, connects and migrates.
    pub async fn migrated(engine: Engine) -> Result<(Self, DatabaseConnection), AppError> {
        let database = Self::create(engine).await?;
        let db = crate::db::connect(&database.url, 32).await?;
        crate::db::migrate(&db).await?;
        Ok((database, db))
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Removes the database (close every connection to it first).
    pub async fn drop_database(self) -> Result<(), AppError> {
        match self.engine {
            Engine::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", self.name));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Engine::Postgres => {
                let admin = Database::connect(&postgres_admin_url()).await?;
                admin
                    .execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        self.name
                    ))
                    .await?;
                admin.close().await?;
            }
        }
        Ok(())
    }
}

/// What an attacker with write access to the database does before altering the ledger:
/// switches the append-only triggers off (PostgreSQL) or drops them (SQLite).
pub async fn disable_ledger_triggers(db: &DatabaseConnection) -> Result<(), AppError> {
    let tables = [
        "ledger_entry",
        "ledger_line",
        "ledger_entry_notice",
        "source_document",
    ];
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            for table in tables {
                db.execute_unprepared(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
                    .await?;
            }
        }
        _ => {
            for table in tables {
                for operation in ["update", "delete"] {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS {table}_no_{operation}"
                    ))
                    .await?;
                }
            }
        }
    }
    Ok(())
}
