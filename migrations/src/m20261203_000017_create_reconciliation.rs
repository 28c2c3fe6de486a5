//! Reconciliation's evidence and labels. Documents are remembered by their SHA-256 so the
//! same file imported twice changes nothing; every revision of a reporting flow is kept with
//! its lines; treasury credits are keyed by the bank's reference. Labels hold the current
//! assessment of each subject (transfer key, credit, flow) and every change is appended to
//! the label history with the evidence that caused it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconDocument {
    Table,
    Id,
    CreditorFiscalCode,
    ContentSha256,
    Kind,
    FileName,
    CoverageDate,
    ImportedAt,
}

#[derive(DeriveIden)]
enum ReconFlow {
    Table,
    Id,
    CreditorFiscalCode,
    FlowId,
    Revision,
    CreatedAt,
    PspId,
    PspName,
    Trn,
    RegulationDate,
    TotalCents,
    LineCount,
    DocumentId,
}

#[derive(DeriveIden)]
enum ReconFlowLine {
    Table,
    FlowRowId,
    LineNumber,
    Iuv,
    ReceiptId,
    IdTransfer,
    AmountCents,
    Outcome,
    PaidOn,
}

#[derive(DeriveIden)]
enum ReconCredit {
    Table,
    CreditorFiscalCode,
    CreditId,
    AmountCents,
    BookingDate,
    ValueDate,
    Causale,
    Trn,
    OrderingParty,
    EndToEndId,
    Account,
    DocumentId,
}

#[derive(DeriveIden)]
enum ReconLabel {
    Table,
    CreditorFiscalCode,
    SubjectKey,
    SubjectKind,
    Iuv,
    Label,
    Labels,
    TreasuryState,
    Assessment,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ReconLabelChange {
    Table,
    Id,
    CreditorFiscalCode,
    SubjectKey,
    Label,
    Labels,
    TreasuryState,
    PreviousLabel,
    Causes,
    ChangedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ReconDocument as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(uuid(D::Id).primary_key())
                    .col(string_len(D::CreditorFiscalCode, 11))
                    .col(string_len(D::ContentSha256, 64))
                    .col(text(D::Kind))
                    .col(text(D::FileName))
                    .col(date_null(D::CoverageDate))
                    .col(timestamp_with_time_zone(D::ImportedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_recon_document_content")
                    .table(D::Table)
                    .col(D::CreditorFiscalCode)
                    .col(D::ContentSha256)
                    .unique()
                    .to_owned(),
            )
            .await?;

        use ReconFlow as F;
        manager
            .create_table(
                Table::create()
                    .table(F::Table)
                    .col(uuid(F::Id).primary_key())
                    .col(string_len(F::CreditorFiscalCode, 11))
                    .col(string_len(F::FlowId, 35))
                    .col(integer(F::Revision))
                    .col(timestamp_with_time_zone(F::CreatedAt))
                    .col(string_len(F::PspId, 35))
                    .col(text_null(F::PspName))
                    .col(string_len(F::Trn, 35))
                    .col(date(F::RegulationDate))
                    .col(big_integer(F::TotalCents))
                    .col(big_integer(F::LineCount))
                    .col(uuid(F::DocumentId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(F::Table, F::DocumentId)
                            .to(D::Table, D::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_recon_flow_revision")
                    .table(F::Table)
                    .col(F::CreditorFiscalCode)
                    .col(F::FlowId)
                    .col(F::CreatedAt)
                    .col(F::Revision)
                    .unique()
                    .to_owned(),
            )
            .await?;

        use ReconFlowLine as L;
        manager
            .create_table(
                Table::create()
                    .table(L::Table)
                    .col(uuid(L::FlowRowId))
                    .col(integer(L::LineNumber))
                    .col(string_len(L::Iuv, 35))
                    .col(string_len(L::ReceiptId, 35))
                    .col(small_integer(L::IdTransfer))
                    .col(big_integer(L::AmountCents))
                    .col(small_integer(L::Outcome))
                    .col(date(L::PaidOn))
                    .primary_key(Index::create().col(L::FlowRowId).col(L::LineNumber))
                    .foreign_key(
                        ForeignKey::create()
                            .from(L::Table, L::FlowRowId)
                            .to(F::Table, F::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recon_flow_line_key")
                    .table(L::Table)
                    .col(L::Iuv)
                    .col(L::ReceiptId)
                    .col(L::IdTransfer)
                    .to_owned(),
            )
            .await?;

        use ReconCredit as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(string_len(C::CreditorFiscalCode, 11))
                    .col(string_len(C::CreditId, 60))
                    .col(big_integer(C::AmountCents))
                    .col(date(C::BookingDate))
                    .col(date(C::ValueDate))
                    .col(text(C::Causale))
                    .col(text_null(C::Trn))
                    .col(text_null(C::OrderingParty))
                    .col(text_null(C::EndToEndId))
                    .col(text(C::Account))
                    .col(uuid(C::DocumentId))
                    .primary_key(Index::create().col(C::CreditorFiscalCode).col(C::CreditId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(C::Table, C::DocumentId)
                            .to(D::Table, D::Id),
                    )
                    .to_owned(),
            )
            .await?;

        use ReconLabel as B;
        manager
            .create_table(
                Table::create()
                    .table(B::Table)
                    .col(string_len(B::CreditorFiscalCode, 11))
                    // The subject as JSON: unambiguous whatever a receipt id contains.
                    .col(text(B::SubjectKey))
                    .col(string_len(B::SubjectKind, 16))
                    .col(string_len_null(B::Iuv, 35))
                    .col(string_len_null(B::Label, 32))
                    .col(text(B::Labels))
                    .col(string_len_null(B::TreasuryState, 16))
                    .col(text(B::Assessment))
                    .col(timestamp_with_time_zone(B::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(B::CreditorFiscalCode)
                            .col(B::SubjectKey),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recon_label_label")
                    .table(B::Table)
                    .col(B::CreditorFiscalCode)
                    .col(B::SubjectKind)
                    .col(B::Label)
                    .to_owned(),
            )
            .await?;

        use ReconLabelChange as H;
        manager
            .create_table(
                Table::create()
                    .table(H::Table)
                    // UUIDv7: ordered by time of the change.
                    .col(uuid(H::Id).primary_key())
                    .col(string_len(H::CreditorFiscalCode, 11))
                    .col(text(H::SubjectKey))
                    .col(string_len_null(H::Label, 32))
                    .col(text(H::Labels))
                    .col(string_len_null(H::TreasuryState, 16))
                    .col(string_len_null(H::PreviousLabel, 32))
                    .col(text(H::Causes))
                    .col(timestamp_with_time_zone(H::ChangedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recon_label_change_subject")
                    .table(H::Table)
                    .col(H::CreditorFiscalCode)
                    .col(H::SubjectKey)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReconLabelChange::Table.into_iden(),
            ReconLabel::Table.into_iden(),
            ReconCredit::Table.into_iden(),
            ReconFlowLine::Table.into_iden(),
            ReconFlow::Table.into_iden(),
            ReconDocument::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
