//! The flow a key's label was composed with when each of its history rows was written. A
//! key's history carries its flow's changes of treasury state while its label is composed
//! with that flow (migration 31), and until now a reader knew only the flow its current row is
//! composed with: a key later written otherwise (a second receipt made it `DOPPI`, an `/RFB/`
//! credit named its IUV) lost the changes its flow made while it was composed, and its
//! history jumped from a label to a change that starts from another. Each history row now
//! names its flow (`composed_flow_id`, NULL when the key was not composed with one), so the
//! history follows each flow for the time its key was composed with it.
//!
//! Rows written before read as the previous release read them: the flow the key's current
//! row is composed with, for each of its rows with a treasury state (the backfill below). A
//! nullable column without default: adding it rewrites nothing, and the previous release,
//! which names its columns, writes NULL (a reader takes a key's last row as composed with the
//! flow its current row names, so such a row still follows it).
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconLabelChange {
    Table,
    ComposedFlowId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReconLabelChange::Table)
                    .add_column(
                        ColumnDef::new(ReconLabelChange::ComposedFlowId)
                            .string_len(35)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // What the previous release read for each row of a key composed with a flow: that
        // flow, for every row of the key with a treasury state.
        let db = manager.get_connection();
        db.execute_raw(Statement::from_string(
            manager.get_database_backend(),
            "UPDATE recon_label_change SET composed_flow_id = (SELECT l.composed_flow_id \
             FROM recon_label l WHERE l.creditor_fiscal_code = recon_label_change.creditor_fiscal_code \
             AND l.subject_key = recon_label_change.subject_key) \
             WHERE treasury_state IS NOT NULL AND EXISTS (SELECT 1 FROM recon_label l \
             WHERE l.creditor_fiscal_code = recon_label_change.creditor_fiscal_code \
             AND l.subject_key = recon_label_change.subject_key \
             AND l.composed_flow_id IS NOT NULL)",
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The previous release follows the flow of a key's current row for all its rows:
        // nothing to write back.
        manager
            .alter_table(
                Table::alter()
                    .table(ReconLabelChange::Table)
                    .drop_column(ReconLabelChange::ComposedFlowId)
                    .to_owned(),
            )
            .await
    }
}
