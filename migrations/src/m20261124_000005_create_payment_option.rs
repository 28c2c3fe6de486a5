//! Payment options of a debt position: mutually exclusive ways to pay it (a single payment,
//! an installment plan); paying one closes the others.
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000004_create_debt_position::DebtPosition;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum PaymentOption {
    Table,
    Id,
    DebtPositionId,
    OptionIndex,
    Label,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PaymentOption::Table)
                    .col(pk_uuid(PaymentOption::Id))
                    .col(uuid(PaymentOption::DebtPositionId))
                    .col(small_integer(PaymentOption::OptionIndex))
                    .col(string_len(PaymentOption::Label, 140))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PaymentOption::Table, PaymentOption::DebtPositionId)
                            .to(DebtPosition::Table, DebtPosition::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_payment_option_position")
                    .table(PaymentOption::Table)
                    .col(PaymentOption::DebtPositionId)
                    .col(PaymentOption::OptionIndex)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PaymentOption::Table).to_owned())
            .await
    }
}
