//! `ledger_entry.receipt_id` as long as the receiptId a receipt is accepted with. The schema
//! leaves receiptId an unbounded string and the receipt parser accepts up to 256 characters,
//! but migration 9 gave the ledger column 64: on PostgreSQL a receipt with a longer id failed
//! its whole transaction and was never stored, so the Node would have retried it forever.
//! Widening a `varchar` rewrites no row on PostgreSQL (the append-only triggers are row
//! triggers and do not fire); SQLite does not enforce the length, so there is nothing to do.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE ledger_entry ALTER COLUMN receipt_id TYPE varchar(256)",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Fails, changing nothing, once a longer receipt id has been booked.
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE ledger_entry ALTER COLUMN receipt_id TYPE varchar(64)",
                )
                .await?;
        }
        Ok(())
    }
}
