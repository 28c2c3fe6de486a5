//! The ledger's lookup indexes hold only the entries they can find. An entry names a debt
//! position, a receipt, a reporting flow, a treasury credit or a posting key only when it is
//! about one, and most entries name two of the five at most: a notice's entries no receipt,
//! flow, credit or posting key; a receipt's no flow, credit or posting key; a `reported`
//! entry no position or credit. Indexing the NULLs cost every append an index insertion per
//! such column for rows no query asks for (every lookup is by value, `=` or `IN`, which both
//! engines' planners match to a `WHERE … IS NOT NULL` index), so each index becomes partial.
use sea_orm_migration::prelude::*;

use crate::partial_index::{PartialIndex, rebuild};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each index: its name, its columns and the column whose NULLs it leaves out.
const INDEXES: [PartialIndex; 5] = [
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, "ledger_entry", &INDEXES, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, "ledger_entry", &INDEXES, false).await
    }
}
