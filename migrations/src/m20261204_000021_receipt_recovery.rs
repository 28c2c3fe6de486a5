//! Missing receipts recovered from PagoPA's biz-events API (issue 12 §3). A receipt booked
//! from biz-events instead of the Node's paSendRT is marked `receipt.recovered`. Each
//! recovery asked for (one per creditor, IUV and IUR of an `IUV_NO_RT` key) keeps its last
//! outcome in `recon_receipt_recovery`: recovered, not found at PagoPA (asked again later,
//! with a growing pause, so a receipt PagoPA does not have is never asked for in a hot loop),
//! or failed; `next_attempt_micros` (microseconds since the epoch, compared in SQL the same
//! way on both engines) says when it may be asked again. `recon_recovery_lease` lets one
//! replica recover a creditor's receipts at a time, like the FdR poller's lease.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Receipt {
    Table,
    Recovered,
}

#[derive(DeriveIden)]
enum ReconReceiptRecovery {
    Table,
    CreditorFiscalCode,
    Iuv,
    ReceiptId,
    State,
    Attempts,
    FirstAttemptAt,
    LastAttemptAt,
    NextAttemptMicros,
    Detail,
}

#[derive(DeriveIden)]
enum ReconRecoveryLease {
    Table,
    CreditorFiscalCode,
    LeaseHolder,
    LeaseUntilMicros,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Receipt::Table)
                    .add_column(boolean(Receipt::Recovered).default(false))
                    .to_owned(),
            )
            .await?;
        use ReconReceiptRecovery as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(string_len(R::CreditorFiscalCode, 11))
                    .col(string_len(R::Iuv, 35))
                    // An FdR line's IUR: at most 35 characters.
                    .col(string_len(R::ReceiptId, 35))
                    .col(string_len(R::State, 16))
                    .col(integer(R::Attempts).default(0))
                    .col(timestamp_with_time_zone(R::FirstAttemptAt))
                    .col(timestamp_with_time_zone(R::LastAttemptAt))
                    .col(big_integer(R::NextAttemptMicros).default(0))
                    .col(text_null(R::Detail))
                    .primary_key(
                        Index::create()
                            .col(R::CreditorFiscalCode)
                            .col(R::Iuv)
                            .col(R::ReceiptId),
                    )
                    .to_owned(),
            )
            .await?;
        use ReconRecoveryLease as L;
        manager
            .create_table(
                Table::create()
                    .table(L::Table)
                    .col(string_len(L::CreditorFiscalCode, 11).primary_key())
                    .col(uuid_null(L::LeaseHolder))
                    .col(big_integer(L::LeaseUntilMicros).default(0))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReconRecoveryLease::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ReconReceiptRecovery::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Receipt::Table)
                    .drop_column(Receipt::Recovered)
                    .to_owned(),
            )
            .await
    }
}
