//! The ledger: append-only journal entries and their lines, the notices each entry concerns,
//! the source documents behind them, and the chain head. Triggers refuse UPDATE, DELETE (and
//! on PostgreSQL TRUNCATE) on every ledger table, so no code path, and no careless operator,
//! can change history; corrections are new entries. The head row is the one mutable piece:
//! it only points at the last entry, and verification checks it against the chain.
use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LedgerHead {
    Table,
    Id,
    LastSequence,
    LastHash,
    LastRecordedAt,
}

#[derive(DeriveIden)]
enum SourceDocument {
    Table,
    Id,
    Kind,
    MediaType,
    Sha256,
    KeyId,
    Nonce,
    Ciphertext,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LedgerEntry {
    Table,
    Sequence,
    Id,
    EventType,
    CreditorFiscalCode,
    Kind,
    Description,
    DebtPositionId,
    ReceiptId,
    ReportingFlowId,
    TreasuryLineId,
    CorrectsSequence,
    SourceDocumentId,
    SourceDocumentSha256,
    RecordedAt,
    RecordedMicros,
    PreviousHash,
    Hash,
    Body,
}

#[derive(DeriveIden)]
enum LedgerLine {
    Table,
    EntrySequence,
    LineIndex,
    Account,
    AccountType,
    CreditorFiscalCode,
    Kind,
    AmountCents,
}

#[derive(DeriveIden)]
enum LedgerEntryNotice {
    Table,
    EntrySequence,
    NoticeIndex,
    NoticeNumber,
    Iuv,
}

const APPEND_ONLY: [&str; 4] = [
    "ledger_entry",
    "ledger_line",
    "ledger_entry_notice",
    "source_document",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LedgerHead::Table)
                    .col(small_integer(LedgerHead::Id).primary_key())
                    .col(big_integer(LedgerHead::LastSequence))
                    .col(binary_len(LedgerHead::LastHash, 32))
                    .col(timestamp_with_time_zone_null(LedgerHead::LastRecordedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(LedgerHead::Table)
                    .columns([
                        LedgerHead::Id,
                        LedgerHead::LastSequence,
                        LedgerHead::LastHash,
                    ])
                    .values_panic([1.into(), 0i64.into(), vec![0u8; 32].into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SourceDocument::Table)
                    .col(pk_uuid(SourceDocument::Id))
                    .col(string_len(SourceDocument::Kind, 32))
                    .col(string_len(SourceDocument::MediaType, 64))
                    .col(binary_len(SourceDocument::Sha256, 32))
                    .col(string_len(SourceDocument::KeyId, 32))
                    .col(blob(SourceDocument::Nonce))
                    .col(blob(SourceDocument::Ciphertext))
                    .col(timestamp_with_time_zone(SourceDocument::CreatedAt))
                    .to_owned(),
            )
            .await?;
        use LedgerEntry as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(big_integer(E::Sequence).primary_key())
                    .col(uuid_uniq(E::Id))
                    .col(string_len(E::EventType, 32))
                    .col(string_len(E::CreditorFiscalCode, 11))
                    .col(string_len_null(E::Kind, 16))
                    .col(string_len(E::Description, 500))
                    .col(uuid_null(E::DebtPositionId))
                    .col(string_len_null(E::ReceiptId, 64))
                    .col(string_len_null(E::ReportingFlowId, 64))
                    .col(string_len_null(E::TreasuryLineId, 64))
                    .col(big_integer_null(E::CorrectsSequence))
                    .col(uuid_null(E::SourceDocumentId))
                    .col(binary_len_null(E::SourceDocumentSha256, 32))
                    .col(timestamp_with_time_zone(E::RecordedAt))
                    // The same instant as microseconds since the epoch: SQLite compares
                    // timestamps as text, which orders fractional seconds wrongly.
                    .col(big_integer(E::RecordedMicros))
                    .col(binary_len(E::PreviousHash, 32))
                    .col(binary_len(E::Hash, 32))
                    // The exact bytes hashed (docs/ledger.md): the entry as recorded. Reads
                    // decode it; the other columns and tables are its queryable projection.
                    .col(blob(E::Body))
                    .foreign_key(
                        ForeignKey::create()
                            .from(E::Table, E::SourceDocumentId)
                            .to(SourceDocument::Table, SourceDocument::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            // Time ranges are found by the integer instant (a timestamp compares differently
            // on the two engines); one index step gives the last sequence before an instant.
            (
                "ix_ledger_entry_recorded_micros",
                vec![E::RecordedMicros, E::Sequence],
            ),
            (
                "ix_ledger_entry_creditor",
                vec![E::CreditorFiscalCode, E::Sequence],
            ),
            (
                "ix_ledger_entry_event_type",
                vec![E::EventType, E::Sequence],
            ),
            (
                "ix_ledger_entry_position",
                vec![E::DebtPositionId, E::Sequence],
            ),
            ("ix_ledger_entry_receipt", vec![E::ReceiptId]),
        ] {
            let mut index = Index::create();
            index.name(name).table(E::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        use LedgerLine as L;
        manager
            .create_table(
                Table::create()
                    .table(L::Table)
                    .col(big_integer(L::EntrySequence))
                    .col(small_integer(L::LineIndex))
                    .col(string_len(L::Account, 64))
                    .col(string_len(L::AccountType, 24))
                    .col(string_len(L::CreditorFiscalCode, 11))
                    .col(string_len_null(L::Kind, 16))
                    .col(big_integer(L::AmountCents))
                    .primary_key(Index::create().col(L::EntrySequence).col(L::LineIndex))
                    .foreign_key(
                        ForeignKey::create()
                            .from(L::Table, L::EntrySequence)
                            .to(E::Table, E::Sequence),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_ledger_line_account")
                    .table(L::Table)
                    .col(L::Account)
                    .col(L::EntrySequence)
                    .to_owned(),
            )
            .await?;
        use LedgerEntryNotice as N;
        manager
            .create_table(
                Table::create()
                    .table(N::Table)
                    .col(big_integer(N::EntrySequence))
                    .col(small_integer(N::NoticeIndex))
                    .col(string_len(N::NoticeNumber, 18))
                    .col(string_len(N::Iuv, 35))
                    .primary_key(Index::create().col(N::EntrySequence).col(N::NoticeIndex))
                    .foreign_key(
                        ForeignKey::create()
                            .from(N::Table, N::EntrySequence)
                            .to(E::Table, E::Sequence),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_ledger_entry_notice_number", N::NoticeNumber),
            ("ix_ledger_entry_notice_iuv", N::Iuv),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(N::Table)
                        .col(column)
                        .col(N::EntrySequence)
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION incasso_refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN RAISE EXCEPTION 'the ledger is append-only: % on % refused; corrections are new entries', \
                     TG_OP, TG_TABLE_NAME; END $$",
                )
                .await?;
                for table in APPEND_ONLY {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} \
                         FOR EACH ROW EXECUTE FUNCTION incasso_refuse_ledger_change()"
                    ))
                    .await?;
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION incasso_refuse_ledger_change()"
                    ))
                    .await?;
                }
            }
            _ => {
                for table in APPEND_ONLY {
                    for operation in ["UPDATE", "DELETE"] {
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_no_{op} BEFORE {operation} ON {table} BEGIN \
                             SELECT RAISE(ABORT, 'the ledger is append-only: {operation} on {table} refused; \
                             corrections are new entries'); END",
                            op = operation.to_lowercase()
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "ledger_entry_notice",
            "ledger_line",
            "ledger_entry",
            "source_document",
            "ledger_head",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS incasso_refuse_ledger_change()")
                .await?;
        }
        Ok(())
    }
}
