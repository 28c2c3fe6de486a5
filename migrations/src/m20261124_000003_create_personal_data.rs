//! Personal data (debtor fiscal code, name, e-mail, plate) kept apart from business rows and
//! stored only as AES-256-GCM ciphertext, so it can be erased or re-keyed on its own.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum PersonalData {
    Table,
    Id,
    KeyId,
    Nonce,
    Ciphertext,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PersonalData::Table)
                    .col(pk_uuid(PersonalData::Id))
                    .col(string_len(PersonalData::KeyId, 32))
                    .col(blob(PersonalData::Nonce))
                    .col(blob(PersonalData::Ciphertext))
                    .col(timestamp_with_time_zone(PersonalData::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PersonalData::Table).to_owned())
            .await
    }
}
