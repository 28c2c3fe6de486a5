//! Receipts as the PagoPA Node delivered them, the conflicts between redeliveries an operator
//! must look at, and the transactional outbox that carries changes to PagoPA's archive (ACA)
//! and to the Fascicolo del Cittadino.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Receipt {
    Table,
    Id,
    CreditorFiscalCode,
    Iuv,
    ReceiptId,
    NoticeNumber,
    ReceivingCreditor,
    ContentSha256,
    SourceDocumentId,
    Primitive,
    PspId,
    ChannelId,
    PaymentAmountCents,
    FeeCents,
    PaymentDateTime,
    StandIn,
    Classification,
    Flags,
    DebtPositionId,
    InstallmentId,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum ReceiptConflict {
    Table,
    Id,
    CreditorFiscalCode,
    Iuv,
    ReceiptId,
    ContentSha256,
    SourceDocumentId,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum OutboxEvent {
    Table,
    Id,
    Topic,
    AggregateId,
    Payload,
    State,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Receipt as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(pk_uuid(R::Id))
                    .col(string_len(R::CreditorFiscalCode, 11))
                    .col(string_len(R::Iuv, 35))
                    .col(text(R::ReceiptId))
                    .col(string_len(R::NoticeNumber, 18))
                    .col(string_len(R::ReceivingCreditor, 11))
                    .col(string_len(R::ContentSha256, 64))
                    .col(uuid(R::SourceDocumentId))
                    .col(string_len(R::Primitive, 16))
                    .col(string_len(R::PspId, 35))
                    .col(string_len(R::ChannelId, 35))
                    .col(big_integer(R::PaymentAmountCents))
                    .col(big_integer_null(R::FeeCents))
                    .col(string_len_null(R::PaymentDateTime, 40))
                    .col(boolean(R::StandIn))
                    .col(string_len(R::Classification, 32))
                    .col(string_len(R::Flags, 200))
                    .col(uuid_null(R::DebtPositionId))
                    .col(uuid_null(R::InstallmentId))
                    .col(timestamp_with_time_zone(R::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_receipt_key")
                    .table(R::Table)
                    .col(R::CreditorFiscalCode)
                    .col(R::Iuv)
                    .col(R::ReceiptId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_receipt_notice", R::NoticeNumber),
            ("ix_receipt_position", R::DebtPositionId),
            ("ix_receipt_classification", R::Classification),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(R::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        use ReceiptConflict as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(pk_uuid(C::Id))
                    .col(string_len(C::CreditorFiscalCode, 11))
                    .col(string_len(C::Iuv, 35))
                    .col(text(C::ReceiptId))
                    .col(string_len(C::ContentSha256, 64))
                    .col(uuid(C::SourceDocumentId))
                    .col(timestamp_with_time_zone(C::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        use OutboxEvent as O;
        manager
            .create_table(
                Table::create()
                    .table(O::Table)
                    .col(pk_uuid(O::Id))
                    .col(string_len(O::Topic, 64))
                    .col(string_len(O::AggregateId, 64))
                    .col(text(O::Payload))
                    .col(string_len(O::State, 16))
                    .col(integer(O::Attempts))
                    // Microseconds since the epoch: compared in SQL on both engines.
                    .col(big_integer(O::NextAttemptAt))
                    .col(text_null(O::LastError))
                    .col(timestamp_with_time_zone(O::CreatedAt))
                    .col(timestamp_with_time_zone_null(O::DeliveredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_due")
                    .table(O::Table)
                    .col(O::Topic)
                    .col(O::State)
                    .col(O::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["outbox_event", "receipt_conflict", "receipt"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
