//! The Fascicolo del Cittadino push: one counter per citizen, keyed by the keyed hash of the
//! fiscal code (never the code), advanced in the transaction of each change the citizen is
//! told about, so the citizen's events are numbered 1, 2, 3, ... with no gap even when a
//! transaction rolls back. The `fascicolo.payment` events queued by earlier releases are
//! dropped: nothing ever delivered them, they carry no sequence, and the first load of the
//! Fascicolo is `incasso fascicolo resync --all`, which pushes every citizen's current
//! picture (those receipts included).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CitizenSequence {
    Table,
    CitizenHash,
    LastSequence,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use CitizenSequence as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(binary_len(C::CitizenHash, 32).primary_key())
                    .col(big_integer(C::LastSequence))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM outbox_event WHERE topic = 'fascicolo.payment'")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CitizenSequence::Table).to_owned())
            .await
    }
}
