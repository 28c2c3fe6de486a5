//! The label table's flow and credit indexes hold only the rows they can find. Almost every
//! row of `recon_label` is a transfer key's, whose `flow_id` and `credit_id` are NULL; the
//! indexes on them are read only to find a flow's or a credit's label (`l.flow_id =
//! f.flow_id`, `l.credit_id = c.credit_id`, which both engines' planners match to a
//! `WHERE … IS NOT NULL` index). Indexing the NULLs cost every write of a transfer's label
//! (a million at a day's import, and again at each relabelling) two index insertions for
//! rows no query asks for, so both indexes become partial.
use sea_orm_migration::prelude::*;

use crate::partial_index::{PartialIndex, rebuild};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each index: its name, its columns and the column whose NULLs it leaves out.
const INDEXES: [PartialIndex; 2] = [
    (
        "ix_recon_label_flow",
        "creditor_fiscal_code, subject_kind, flow_id",
        "flow_id",
    ),
    (
        "ix_recon_label_credit",
        "creditor_fiscal_code, subject_kind, credit_id",
        "credit_id",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, "recon_label", &INDEXES, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, "recon_label", &INDEXES, false).await
    }
}
