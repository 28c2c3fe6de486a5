//! The IUVs whose receipts reconciliation has not labelled yet, per beneficiary. The receipt
//! path adds one row per (beneficiary, IUV) of each transfer it books; the next import (or
//! `incasso recon refresh`) takes them, relabels those IUVs' keys and nothing else. Without
//! it an import could find the receipts booked since the last one only by reading every
//! receipt of the creditor. Filled here with every IUV paid so far, so the first import after
//! this migration catches them all up, as imports did before.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconPendingIuv {
    Table,
    CreditorFiscalCode,
    Iuv,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ReconPendingIuv as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(
                        ColumnDef::new(P::CreditorFiscalCode)
                            .string_len(11)
                            .not_null(),
                    )
                    .col(ColumnDef::new(P::Iuv).string_len(35).not_null())
                    .primary_key(Index::create().col(P::CreditorFiscalCode).col(P::Iuv))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO recon_pending_iuv (creditor_fiscal_code, iuv) \
                 SELECT DISTINCT beneficiary_fiscal_code, iuv FROM receipt_transfer",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReconPendingIuv::Table).to_owned())
            .await
    }
}
