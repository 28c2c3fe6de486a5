//! The counter behind every issued notice number: one row per creditor and segregation code,
//! advanced by an atomic `UPDATE ... RETURNING`, never decremented.
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_creditor::Creditor;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IuvSequence {
    Table,
    CreditorFiscalCode,
    SegregationCode,
    NextBase,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IuvSequence::Table)
                    .col(string_len(IuvSequence::CreditorFiscalCode, 11))
                    .col(small_integer(IuvSequence::SegregationCode))
                    .col(big_integer(IuvSequence::NextBase))
                    .col(timestamp_with_time_zone(IuvSequence::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(IuvSequence::CreditorFiscalCode)
                            .col(IuvSequence::SegregationCode),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(IuvSequence::Table, IuvSequence::CreditorFiscalCode)
                            .to(Creditor::Table, Creditor::FiscalCode),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IuvSequence::Table).to_owned())
            .await
    }
}
