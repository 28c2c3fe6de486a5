//! What each stored flow revision's lines add up to, next to the total its PSP declared. The
//! two differ when a PSP's flow does not add up (it is imported as declared, with a warning),
//! and the finance office reads both in `ListReportingFlows` and the report's Flussi sheet
//! without summing thousands of lines per flow at every read. Filled here for the revisions
//! stored before, and by every later import.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconFlow {
    Table,
    LinesCents,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .add_column(
                        ColumnDef::new(ReconFlow::LinesCents)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE recon_flow SET lines_cents = COALESCE((SELECT SUM(l.amount_cents) \
                 FROM recon_flow_line l WHERE l.flow_row_id = recon_flow.id), 0)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .drop_column(ReconFlow::LinesCents)
                    .to_owned(),
            )
            .await
    }
}
