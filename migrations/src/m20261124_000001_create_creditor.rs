//! Creditor institutions (Enti Creditori) and their registered accounts, mirrored from the
//! configuration at start-up so that positions can reference them.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Creditor {
    Table,
    FiscalCode,
    Name,
    SegregationCode,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CreditorAccount {
    Table,
    CreditorFiscalCode,
    Iban,
    Postal,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Creditor::Table)
                    .col(string_len(Creditor::FiscalCode, 11).primary_key())
                    .col(string_len(Creditor::Name, 70))
                    .col(small_integer_null(Creditor::SegregationCode))
                    .col(timestamp_with_time_zone(Creditor::CreatedAt))
                    .col(timestamp_with_time_zone(Creditor::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CreditorAccount::Table)
                    .col(string_len(CreditorAccount::CreditorFiscalCode, 11))
                    .col(string_len(CreditorAccount::Iban, 34))
                    .col(boolean(CreditorAccount::Postal))
                    .primary_key(
                        Index::create()
                            .col(CreditorAccount::CreditorFiscalCode)
                            .col(CreditorAccount::Iban),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CreditorAccount::Table, CreditorAccount::CreditorFiscalCode)
                            .to(Creditor::Table, Creditor::FiscalCode),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CreditorAccount::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Creditor::Table).to_owned())
            .await
    }
}
