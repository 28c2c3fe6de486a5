//! A flow's lines in key order. A statement restates the keys of the flows it changes, a
//! page at a time (`services/store/src/reconciliation/restated.rs`); read flow by flow in
//! line order, each page's keys lie on random pages of the label table and of its indexes,
//! and at a day's million keys each write there was a page read and, after every
//! checkpoint, a full-page image. Read in key order across the flows, a page's keys are
//! neighbours in the label table's indexes (ordered by IUV), so its writes land on few pages.
//! This index lets each flow's lines be merged in key order, a page at a time.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_recon_flow_line_flow_key ON recon_flow_line \
                 (flow_row_id, iuv, receipt_id, id_transfer)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX ix_recon_flow_line_flow_key")
            .await?;
        Ok(())
    }
}
