//! The ledger's lookup indexes hold only the entries they can find. An entry names a debt
//! position, a receipt, a reporting flow, a treasury credit or a posting key only when it is
//! about one, and most entries name two of the five at most: a notice's entries no receipt,
//! flow, credit or posting key; a receipt's no flow, credit or posting key; a `reported`
//! entry no position or credit. Indexing the NULLs cost every append an index insertion per
//! such column for rows no query asks for (every lookup is by value, `=` or `IN`, which both
//! engines' planners match to a `WHERE … IS NOT NULL` index), so each index becomes partial.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each index: its name, its columns and the column whose NULLs it leaves out.
const INDEXES: [(&str, &str, &str); 5] = [
    (
        "ix_ledger_entry_position",
        "debt_position_id, sequence",
        "debt_position_id",
    ),
    ("ix_ledger_entry_receipt", "receipt_id", "receipt_id"),
    (
        "ix_ledger_entry_reporting_flow",
        "reporting_flow_id, sequence",
        "reporting_flow_id",
    ),
    (
        "ix_ledger_entry_treasury_line",
        "treasury_line_id, sequence",
        "treasury_line_id",
    ),
    (
        "ix_ledger_entry_posting_key",
        "creditor_fiscal_code, posting_key, sequence",
        "posting_key",
    ),
];

async fn rebuild(manager: &SchemaManager<'_>, partial: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (name, columns, column) in INDEXES {
        db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        let only = if partial {
            format!(" WHERE {column} IS NOT NULL")
        } else {
            String::new()
        };
        db.execute_unprepared(&format!(
            "CREATE INDEX {name} ON ledger_entry ({columns}){only}"
        ))
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, false).await
    }
}
