//! The transfers of each stored receipt, one row per `transfer` of its `transferList`, written
//! in the receipt's transaction. Reconciliation matches a PSP's reporting-flow line (IUV,
//! IUR = receiptId, indiceDatiSingoloPagamento = idTransfer) to one of these rows, so the
//! receipt's key is repeated here and indexed with idTransfer. The payer and the debtor are
//! not here: they stay only in the receipt's encrypted raw message.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The receipt table as migration 10 created it.
#[derive(DeriveIden)]
enum Receipt {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ReceiptTransfer {
    Table,
    ReceiptRowId,
    TransferIndex,
    CreditorFiscalCode,
    Iuv,
    ReceiptId,
    IdTransfer,
    BeneficiaryFiscalCode,
    Iban,
    AmountCents,
    RemittanceInformation,
    TransferCategory,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ReceiptTransfer as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    // The receipt row (receipt.id), not PagoPA's receiptId.
                    .col(uuid(T::ReceiptRowId))
                    // Position in the transferList: idTransfer is not guaranteed unique by
                    // the XSD, and a receipt is never refused for it.
                    .col(small_integer(T::TransferIndex))
                    .col(string_len(T::CreditorFiscalCode, 11))
                    .col(string_len(T::Iuv, 35))
                    .col(text(T::ReceiptId))
                    .col(small_integer(T::IdTransfer))
                    .col(string_len(T::BeneficiaryFiscalCode, 11))
                    // NULL for a digital stamp (MBDAttachment): no account is credited.
                    .col(string_len_null(T::Iban, 35))
                    .col(big_integer(T::AmountCents))
                    .col(string_len(T::RemittanceInformation, 140))
                    .col(string_len(T::TransferCategory, 140))
                    .primary_key(Index::create().col(T::ReceiptRowId).col(T::TransferIndex))
                    .foreign_key(
                        ForeignKey::create()
                            .from(T::Table, T::ReceiptRowId)
                            .to(Receipt::Table, Receipt::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_receipt_transfer_reporting")
                    .table(T::Table)
                    .col(T::Iuv)
                    .col(T::ReceiptId)
                    .col(T::IdTransfer)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_receipt_transfer_beneficiary")
                    .table(T::Table)
                    .col(T::BeneficiaryFiscalCode)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReceiptTransfer::Table).to_owned())
            .await
    }
}
