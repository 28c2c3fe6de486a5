//! Installments: each one notice with its own notice number (NAV), IUV, amount, due date and
//! optional expiry. The unique indexes are the last line of defence against a notice number
//! or IUV ever being issued twice by the same creditor.
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000004_create_debt_position::DebtPosition;
use crate::m20261124_000005_create_payment_option::PaymentOption;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Installment {
    Table,
    Id,
    DebtPositionId,
    PaymentOptionId,
    OptionIndex,
    InstallmentIndex,
    CreditorFiscalCode,
    NoticeNumber,
    Iuv,
    AmountCents,
    DueDate,
    ExpiryDate,
    State,
    PaidAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Installment as I;
        manager
            .create_table(
                Table::create()
                    .table(I::Table)
                    .col(pk_uuid(I::Id))
                    .col(uuid(I::DebtPositionId))
                    .col(uuid(I::PaymentOptionId))
                    .col(small_integer(I::OptionIndex))
                    .col(small_integer(I::InstallmentIndex))
                    .col(string_len(I::CreditorFiscalCode, 11))
                    .col(string_len(I::NoticeNumber, 18))
                    .col(string_len(I::Iuv, 35))
                    .col(big_integer(I::AmountCents))
                    .col(date(I::DueDate))
                    .col(date_null(I::ExpiryDate))
                    .col(string_len(I::State, 16))
                    .col(timestamp_with_time_zone_null(I::PaidAt))
                    .col(timestamp_with_time_zone(I::CreatedAt))
                    .col(timestamp_with_time_zone(I::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(I::Table, I::DebtPositionId)
                            .to(DebtPosition::Table, DebtPosition::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(I::Table, I::PaymentOptionId)
                            .to(PaymentOption::Table, PaymentOption::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ux_installment_notice_number", I::NoticeNumber),
            ("ux_installment_iuv", I::Iuv),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(I::Table)
                        .col(I::CreditorFiscalCode)
                        .col(col)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_installment_position")
                    .table(I::Table)
                    .col(I::DebtPositionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_installment_notice_number")
                    .table(I::Table)
                    .col(I::NoticeNumber)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Installment::Table).to_owned())
            .await
    }
}
