//! Transfers: the 1..5 shares of an installment, each to one beneficiary's account.
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000006_create_installment::Installment;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Transfer {
    Table,
    InstallmentId,
    TransferIndex,
    BeneficiaryFiscalCode,
    AmountCents,
    RemittanceInformation,
    Iban,
    PostalIban,
    TaxonomyCode,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Transfer as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(uuid(T::InstallmentId))
                    .col(small_integer(T::TransferIndex))
                    .col(string_len(T::BeneficiaryFiscalCode, 11))
                    .col(big_integer(T::AmountCents))
                    .col(string_len(T::RemittanceInformation, 140))
                    .col(string_len(T::Iban, 34))
                    .col(string_len_null(T::PostalIban, 34))
                    .col(string_len(T::TaxonomyCode, 16))
                    .primary_key(Index::create().col(T::InstallmentId).col(T::TransferIndex))
                    .foreign_key(
                        ForeignKey::create()
                            .from(T::Table, T::InstallmentId)
                            .to(Installment::Table, Installment::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Transfer::Table).to_owned())
            .await
    }
}
