//! What became of each App IO message incasso meant to send: sent (with IO's message id), not
//! sent because the citizen is not on IO or does not let the service write to them, or not
//! sent because the notice was paid, cancelled or rescheduled by the time it was due. One
//! row per outbox event that reached a final answer; operators read it with
//! `incasso io messages`. No personal data: the citizen is the position's debtor.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IoMessage {
    Table,
    Id,
    EventId,
    DebtPositionId,
    NoticeNumber,
    Purpose,
    Outcome,
    Reason,
    IoMessageId,
    RecordedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use IoMessage as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(uuid(T::Id).primary_key())
                    // The outbox event it answers.
                    .col(uuid(T::EventId))
                    .col(uuid(T::DebtPositionId))
                    .col(string_len(T::NoticeNumber, 18))
                    // notice | reminder | reduced_amount_ending
                    .col(string_len(T::Purpose, 32))
                    // sent | not_on_io | sender_not_allowed | not_sent
                    .col(string_len(T::Outcome, 32))
                    .col(text_null(T::Reason))
                    .col(string_len_null(T::IoMessageId, 64))
                    .col(timestamp_with_time_zone(T::RecordedAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_io_message_event", T::EventId),
            ("ix_io_message_notice", T::NoticeNumber),
            ("ix_io_message_position", T::DebtPositionId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(T::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IoMessage::Table).to_owned())
            .await
    }
}
