//! The FdR REST poller's state, one row per creditor: how far the published flows have been
//! read (the watermark) and which replica is polling now (a lease with its expiry in
//! microseconds since the epoch, compared in SQL the same way on both engines). Reporting
//! flows also keep the BIC of the bank that sent their credit transfer, which both the
//! FlussoRiversamento and the REST header carry.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconFdrPoll {
    Table,
    CreditorFiscalCode,
    PublishedWatermark,
    LeaseHolder,
    LeaseUntilMicros,
    PolledAt,
}

#[derive(DeriveIden)]
enum ReconFlow {
    Table,
    Bic,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ReconFdrPoll as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(string_len(P::CreditorFiscalCode, 11).primary_key())
                    .col(timestamp_with_time_zone_null(P::PublishedWatermark))
                    .col(uuid_null(P::LeaseHolder))
                    .col(big_integer(P::LeaseUntilMicros).default(0))
                    .col(timestamp_with_time_zone_null(P::PolledAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .add_column(string_len_null(ReconFlow::Bic, 35))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .drop_column(ReconFlow::Bic)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ReconFdrPoll::Table).to_owned())
            .await
    }
}
