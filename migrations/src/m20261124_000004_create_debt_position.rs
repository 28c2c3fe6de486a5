//! Debt positions: one per upstream debt (a TARI bill, a fine, a monthly fee). Kind-specific
//! details live in nullable columns of the same row; personal data only as a reference to
//! `personal_data` plus a keyed hash of the debtor's fiscal code for lookups.
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_creditor::Creditor;
use crate::m20261124_000003_create_personal_data::PersonalData;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum DebtPosition {
    Table,
    Id,
    CreditorFiscalCode,
    RequestId,
    Kind,
    Description,
    State,
    ExpiresOn,
    DebtorEntityType,
    DebtorFiscalCodeHash,
    PersonalDataId,
    TariTaxYear,
    TariPropertyRef,
    FineReportNumber,
    FineViolationDate,
    FineNotificationDate,
    FineReducedAmountCents,
    FineFullAmountCents,
    FineIncreasedAmountCents,
    FineNotificationCostsCents,
    SchoolPupilRef,
    SchoolService,
    SchoolYear,
    SchoolMonth,
    Version,
    CancellationReason,
    CreatedAt,
    UpdatedAt,
    CancelledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use DebtPosition as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(pk_uuid(D::Id))
                    .col(string_len(D::CreditorFiscalCode, 11))
                    .col(string_len(D::RequestId, 100))
                    .col(string_len(D::Kind, 16))
                    .col(string_len(D::Description, 140))
                    .col(string_len(D::State, 16))
                    .col(date_null(D::ExpiresOn))
                    .col(string_len(D::DebtorEntityType, 1))
                    .col(binary_len(D::DebtorFiscalCodeHash, 32))
                    .col(uuid(D::PersonalDataId))
                    .col(integer_null(D::TariTaxYear))
                    .col(string_len_null(D::TariPropertyRef, 35))
                    .col(string_len_null(D::FineReportNumber, 35))
                    .col(date_null(D::FineViolationDate))
                    .col(date_null(D::FineNotificationDate))
                    .col(big_integer_null(D::FineReducedAmountCents))
                    .col(big_integer_null(D::FineFullAmountCents))
                    .col(big_integer_null(D::FineIncreasedAmountCents))
                    .col(big_integer_null(D::FineNotificationCostsCents))
                    .col(string_len_null(D::SchoolPupilRef, 35))
                    .col(string_len_null(D::SchoolService, 16))
                    .col(string_len_null(D::SchoolYear, 9))
                    .col(string_len_null(D::SchoolMonth, 7))
                    .col(big_integer(D::Version))
                    .col(string_len_null(D::CancellationReason, 140))
                    .col(timestamp_with_time_zone(D::CreatedAt))
                    .col(timestamp_with_time_zone(D::UpdatedAt))
                    .col(timestamp_with_time_zone_null(D::CancelledAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(D::Table, D::CreditorFiscalCode)
                            .to(Creditor::Table, Creditor::FiscalCode),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(D::Table, D::PersonalDataId)
                            .to(PersonalData::Table, PersonalData::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_debt_position_request")
                    .table(D::Table)
                    .col(D::CreditorFiscalCode)
                    .col(D::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_debt_position_debtor")
                    .table(D::Table)
                    .col(D::DebtorFiscalCodeHash)
                    .col(D::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_debt_position_creditor_kind")
                    .table(D::Table)
                    .col(D::CreditorFiscalCode)
                    .col(D::Kind)
                    .col(D::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DebtPosition::Table).to_owned())
            .await
    }
}
