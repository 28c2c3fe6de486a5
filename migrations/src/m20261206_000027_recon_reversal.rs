//! The reversals of treasury credits a document carried (an OPI `STORNATO` of an `ENTRATA`,
//! a camt booked `DBIT` with `RvslInd`). The contract defines credits only, so a reversal
//! changes no label; but it is money taken back, which the finance office must check with the
//! treasury after the import's warning has scrolled away: so it is kept, and listed
//! (`ListTreasuryReversals`). A reversal is keyed by its own reference, or, when it has
//! none, by its document and its place in it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconReversal {
    Table,
    CreditorFiscalCode,
    ReversalKey,
    Reference,
    ReversesBill,
    AmountCents,
    BookingDate,
    Account,
    DocumentId,
}

#[derive(DeriveIden)]
enum ReconDocument {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ReconReversal as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(string_len(R::CreditorFiscalCode, 11))
                    .col(text(R::ReversalKey))
                    .col(text_null(R::Reference))
                    .col(text_null(R::ReversesBill))
                    .col(big_integer_null(R::AmountCents))
                    .col(date_null(R::BookingDate))
                    .col(text(R::Account))
                    .col(uuid(R::DocumentId))
                    .primary_key(
                        Index::create()
                            .col(R::CreditorFiscalCode)
                            .col(R::ReversalKey),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(R::Table, R::DocumentId)
                            .to(ReconDocument::Table, ReconDocument::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recon_reversal_booking")
                    .table(R::Table)
                    .col(R::CreditorFiscalCode)
                    .col(R::BookingDate)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReconReversal::Table).to_owned())
            .await
    }
}
