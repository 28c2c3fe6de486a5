//! A label's history found by a hash of its subject, on PostgreSQL. The history is read only
//! by one subject at a time (`GetTransferHistory`, `incasso recon history`: equality on the
//! subject, the rows then ordered by id), and written a row per label change: a day's
//! imports write about three million, each an insertion into this index at a random place.
//! The B-tree on (creditor, subject key) held the 96-byte JSON key in every entry: 281 MB
//! after a day of a million receipts, far more than `shared_buffers`, so each insertion was
//! likely a page read and, after a checkpoint, a full-page image. A hash index holds a
//! 4-byte hash per entry (88 MB for the same rows) and took about a third off inserting a
//! page of history rows (measured in `psql` on those tables, docs/reconciliation.md).
//! SQLite has no hash index and keeps the B-tree.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Replaces the history's subject index by one of `definition` (its method and columns), on
/// PostgreSQL; SQLite keeps its B-tree.
async fn replace_index(manager: &SchemaManager<'_>, definition: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    db.execute_unprepared("DROP INDEX ix_recon_label_change_subject")
        .await?;
    db.execute_unprepared(&format!(
        "CREATE INDEX ix_recon_label_change_subject ON recon_label_change {definition}"
    ))
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_index(manager, "USING hash (subject_key)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_index(manager, "(creditor_fiscal_code, subject_key)").await
    }
}
