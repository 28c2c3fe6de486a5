//! The receipt inbox: a receipt whose booking failed for a reason that retrying at once cannot
//! fix (a row missing, an invariant broken in stored data, a bug in a posting rule) is kept
//! as *parked* instead of being answered KO and lost. Its `receipt` row is written with
//! classification `parked` (so that its key already answers redeliveries) and its booking
//! state lives here: why it parked, how often it was tried, when it is tried next, and the
//! receipt's facts sealed with the personal-data key (the remittance text may name the
//! debtor), which is what a retry books from. A booked retry stamps `booked_at`; the row stays
//! as the history of what happened.
//!
//! `receipt.paid_at` is the payment instant read from paymentDateTime (UTC), so that receipts
//! can be listed by payment date with an index; the text as sent stays in
//! `payment_date_time`. IUV and receiptId get indexes of their own for the finance office's
//! look-ups (the unique key starts with the creditor).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The receipt table as migration 10 created it.
#[derive(DeriveIden)]
enum Receipt {
    Table,
    Id,
    Iuv,
    ReceiptId,
    PaidAt,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum ParkedReceipt {
    Table,
    ReceiptRowId,
    Reason,
    Attempts,
    NextAttemptMicros,
    ParkedAt,
    LastAttemptAt,
    BookedAt,
    KeyId,
    Nonce,
    Ciphertext,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Receipt::Table)
                    .add_column(timestamp_with_time_zone_null(Receipt::PaidAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_receipt_iuv", Receipt::Iuv),
            ("ix_receipt_receipt_id", Receipt::ReceiptId),
            ("ix_receipt_paid_at", Receipt::PaidAt),
            ("ix_receipt_received_at", Receipt::ReceivedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Receipt::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        use ParkedReceipt as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(pk_uuid(P::ReceiptRowId))
                    .col(text(P::Reason))
                    .col(integer(P::Attempts))
                    .col(big_integer(P::NextAttemptMicros))
                    .col(timestamp_with_time_zone(P::ParkedAt))
                    .col(timestamp_with_time_zone_null(P::LastAttemptAt))
                    .col(timestamp_with_time_zone_null(P::BookedAt))
                    .col(string_len(P::KeyId, 64))
                    .col(blob(P::Nonce))
                    .col(blob(P::Ciphertext))
                    .foreign_key(
                        ForeignKey::create()
                            .from(P::Table, P::ReceiptRowId)
                            .to(Receipt::Table, Receipt::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_parked_receipt_due")
                    .table(P::Table)
                    .col(P::BookedAt)
                    .col(P::NextAttemptMicros)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ParkedReceipt::Table).to_owned())
            .await?;
        for name in [
            "ix_receipt_iuv",
            "ix_receipt_receipt_id",
            "ix_receipt_paid_at",
            "ix_receipt_received_at",
        ] {
            manager
                .drop_index(Index::drop().name(name).table(Receipt::Table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Receipt::Table)
                    .drop_column(Receipt::PaidAt)
                    .to_owned(),
            )
            .await
    }
}
