//! The idempotency record of every command from outside: one row per creditor and
//! caller-chosen request id, with the SHA-256 of the request's content, so that a retry is
//! recognised and a reuse of the id with other content is refused. It is written first in
//! every command's transaction (insert-or-nothing), which makes it the one place where two
//! concurrent copies of a request meet; hence no foreign key to the position written after it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Command {
    Table,
    CreditorFiscalCode,
    RequestId,
    Kind,
    RequestSha256,
    DebtPositionId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Command as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(string_len(C::CreditorFiscalCode, 11))
                    .col(string_len(C::RequestId, 100))
                    .col(string_len(C::Kind, 16))
                    .col(string_len(C::RequestSha256, 64))
                    .col(uuid(C::DebtPositionId))
                    .col(timestamp_with_time_zone(C::CreatedAt))
                    // request_id leads: a bulk batch looks up hundreds of ids of one creditor at
                    // once, and with the creditor first the planner may scan every command of
                    // that creditor instead of probing the ids.
                    .primary_key(Index::create().col(C::RequestId).col(C::CreditorFiscalCode))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Command::Table).to_owned())
            .await
    }
}
