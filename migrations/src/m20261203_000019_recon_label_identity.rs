//! The identity of each reconciliation subject as plain columns of `recon_label`, so the
//! finance office's lists (gRPC `ReconciliationService`) can join and page on them: a transfer
//! key's receiptId and idTransfer (its IUV was a column already), a flow's id and a credit's
//! id. The subject key (JSON) stays the row's identity; these columns are copies of its parts,
//! filled here for the rows written before and by every later write. Indexes serve the lists'
//! keyset order and the receipt-transfer side of the transfer list.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconLabel {
    Table,
    CreditorFiscalCode,
    SubjectKind,
    Iuv,
    ReceiptId,
    IdTransfer,
    FlowId,
    CreditId,
}

#[derive(DeriveIden)]
enum ReceiptTransfer {
    Table,
    BeneficiaryFiscalCode,
    Iuv,
    ReceiptId,
    IdTransfer,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ReconLabel as B;
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            // Text like receipt_transfer's: receipts are stored whatever their receiptId's length.
            ColumnDef::new(B::ReceiptId).text().null().to_owned(),
            ColumnDef::new(B::IdTransfer)
                .small_integer()
                .null()
                .to_owned(),
            ColumnDef::new(B::FlowId).string_len(35).null().to_owned(),
            ColumnDef::new(B::CreditId).string_len(60).null().to_owned(),
        ] {
            manager
                .alter_table(Table::alter().table(B::Table).add_column(column).to_owned())
                .await?;
        }
        // The subject keys are serde's JSON of the domain's `Subject`:
        // {"Transfer":{"iuv":..,"receipt_id":..,"transfer_index":n}}, {"Flow":".."}, {"Credit":".."}.
        let backfill = match manager.get_database_backend() {
            DbBackend::Postgres => [
                "UPDATE recon_label SET receipt_id = subject_key::json -> 'Transfer' ->> 'receipt_id', \
                 id_transfer = CAST(subject_key::json -> 'Transfer' ->> 'transfer_index' AS SMALLINT) \
                 WHERE subject_kind = 'transfer'",
                "UPDATE recon_label SET flow_id = subject_key::json ->> 'Flow' WHERE subject_kind = 'flow'",
                "UPDATE recon_label SET credit_id = subject_key::json ->> 'Credit' WHERE subject_kind = 'credit'",
            ],
            _ => [
                "UPDATE recon_label SET receipt_id = json_extract(subject_key, '$.Transfer.receipt_id'), \
                 id_transfer = json_extract(subject_key, '$.Transfer.transfer_index') \
                 WHERE subject_kind = 'transfer'",
                "UPDATE recon_label SET flow_id = json_extract(subject_key, '$.Flow') WHERE subject_kind = 'flow'",
                "UPDATE recon_label SET credit_id = json_extract(subject_key, '$.Credit') WHERE subject_kind = 'credit'",
            ],
        };
        for sql in backfill {
            manager.get_connection().execute_unprepared(sql).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_recon_label_transfer")
                    .table(B::Table)
                    .col(B::CreditorFiscalCode)
                    .col(B::SubjectKind)
                    .col(B::Iuv)
                    .col(B::ReceiptId)
                    .col(B::IdTransfer)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recon_label_flow")
                    .table(B::Table)
                    .col(B::CreditorFiscalCode)
                    .col(B::SubjectKind)
                    .col(B::FlowId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recon_label_credit")
                    .table(B::Table)
                    .col(B::CreditorFiscalCode)
                    .col(B::SubjectKind)
                    .col(B::CreditId)
                    .to_owned(),
            )
            .await?;
        use ReceiptTransfer as T;
        manager
            .create_index(
                Index::create()
                    .name("ix_receipt_transfer_key")
                    .table(T::Table)
                    .col(T::BeneficiaryFiscalCode)
                    .col(T::Iuv)
                    .col(T::ReceiptId)
                    .col(T::IdTransfer)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "ix_receipt_transfer_key",
                ReceiptTransfer::Table.into_iden(),
            ),
            ("ix_recon_label_credit", ReconLabel::Table.into_iden()),
            ("ix_recon_label_flow", ReconLabel::Table.into_iden()),
            ("ix_recon_label_transfer", ReconLabel::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for column in [
            ReconLabel::CreditId,
            ReconLabel::FlowId,
            ReconLabel::IdTransfer,
            ReconLabel::ReceiptId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ReconLabel::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
