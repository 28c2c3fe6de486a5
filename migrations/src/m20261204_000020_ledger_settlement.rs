//! What the `reported` and `cashed` postings name, as queryable columns of `ledger_entry`: the
//! revision of the reporting flow an entry follows and its posting key (what it settles, which
//! makes reconciliation's postings idempotent; `docs/ledger.md`). Both are part of the entry's
//! recorded bytes (canonical encoding v2); the columns are their projection. Indexes let an
//! auditor follow one flow (`reporting_flow_id`) or one treasury credit (`treasury_line_id`,
//! the credit's id) to its entries, and let an import read what was already posted per key.
//! Adding nullable columns rewrites no row, so the append-only triggers do not fire.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LedgerEntry {
    Table,
    Sequence,
    CreditorFiscalCode,
    ReportingFlowId,
    ReportingFlowRevision,
    TreasuryLineId,
    PostingKey,
}

const INDEXES: [&str; 3] = [
    "ix_ledger_entry_reporting_flow",
    "ix_ledger_entry_treasury_line",
    "ix_ledger_entry_posting_key",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use LedgerEntry as E;
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            ColumnDef::new(E::ReportingFlowRevision)
                .integer()
                .null()
                .to_owned(),
            // `reported:IUV/n/IUR` holds a receiptId, which may be 256 characters long.
            ColumnDef::new(E::PostingKey).text().null().to_owned(),
        ] {
            manager
                .alter_table(Table::alter().table(E::Table).add_column(column).to_owned())
                .await?;
        }
        for (name, columns) in INDEXES.into_iter().zip([
            vec![E::ReportingFlowId, E::Sequence],
            vec![E::TreasuryLineId, E::Sequence],
            vec![E::CreditorFiscalCode, E::PostingKey, E::Sequence],
        ]) {
            let mut index = Index::create();
            index.name(name).table(E::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use LedgerEntry as E;
        for name in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(E::Table).to_owned())
                .await?;
        }
        for column in [E::PostingKey, E::ReportingFlowRevision] {
            manager
                .alter_table(
                    Table::alter()
                        .table(E::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
