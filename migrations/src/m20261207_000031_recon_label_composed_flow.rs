//! A transfer key's label composed with its flow's when it is read. A day's statement
//! changes the treasury state of about eighty flows, and with it the label of every key their
//! lines report: a million label rows and history rows rewritten for eighty changes of fact.
//! Instead a key reported by one flow keeps what its receipts and lines decided, and its label
//! is composed with its flow's current treasury state when read (the domain's
//! `compose_with_flow`). `composed_flow_id` names that flow, so the lists can compose in SQL
//! (filter by label); NULL for a row written before (whose label a statement still rewrites,
//! setting the column) and for every other subject. A nullable column without default: adding
//! it rewrites nothing, and the previous release, which names its columns, writes NULL.
//!
//! `recon_flow.keys_composed` says that every key of a flow revision was written composed with
//! its flow (or, reported by another flow too, is found as such): a statement reaching the
//! flow then reads none of its keys. Set by this release's import of a flow's first revision,
//! and of a later one when every earlier revision has it; FALSE (the default, a constant:
//! adding it rewrites nothing) for a revision an earlier release imported, whose keys the next
//! statement reads and rewrites.
use incasso_domain::reconciliation::{Assessment, recompose};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconLabel {
    Table,
    ComposedFlowId,
}

#[derive(DeriveIden)]
enum ReconFlow {
    Table,
    KeysComposed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReconLabel::Table)
                    .add_column(
                        ColumnDef::new(ReconLabel::ComposedFlowId)
                            .string_len(35)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .add_column(
                        ColumnDef::new(ReconFlow::KeysComposed)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The previous release reads a key's stored label alone: first write each composed
        // key's label as this release reads it.
        write_back_composed_labels(manager).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .drop_column(ReconFlow::KeysComposed)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ReconLabel::Table)
                    .drop_column(ReconLabel::ComposedFlowId)
                    .to_owned(),
            )
            .await
    }
}

/// Keys written back a page at a time.
const PAGE: i64 = 10_000;

fn invalid(e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("stored reconciliation label is invalid: {e}"))
}

/// Rewrites every key composed with its flow whose flow's standing changed since its row was
/// written: its label, conditions, treasury state and assessment as composed now.
async fn write_back_composed_labels(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let sql = |text: &str| match backend {
        DbBackend::Postgres => text.to_owned(),
        _ => text.replace('$', "?"),
    };
    let mut after = (String::new(), String::new());
    loop {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql(
                    "SELECT l.creditor_fiscal_code, l.subject_key, l.assessment, \
                     f.assessment AS flow_assessment FROM recon_label l JOIN recon_label f \
                     ON f.creditor_fiscal_code = l.creditor_fiscal_code \
                     AND f.subject_kind = 'flow' AND f.flow_id = l.composed_flow_id \
                     WHERE l.composed_flow_id IS NOT NULL \
                     AND (l.creditor_fiscal_code, l.subject_key) > ($1, $2) \
                     ORDER BY l.creditor_fiscal_code, l.subject_key LIMIT $3",
                ),
                [after.0.clone().into(), after.1.clone().into(), PAGE.into()],
            ))
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            let creditor: String = row.try_get("", "creditor_fiscal_code")?;
            let key: String = row.try_get("", "subject_key")?;
            let stored: String = row.try_get("", "assessment")?;
            let flow: String = row.try_get("", "flow_assessment")?;
            let stored: Assessment = serde_json::from_str(&stored).map_err(invalid)?;
            let flow: Assessment = serde_json::from_str(&flow).map_err(invalid)?;
            after = (creditor, key);
            let Some(now) = recompose(&stored, &flow) else {
                continue;
            };
            let labels: Vec<&str> = now.labels.iter().map(|l| l.code()).collect();
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                sql(
                    "UPDATE recon_label SET label = $1, labels = $2, treasury_state = $3, \
                     assessment = $4 WHERE creditor_fiscal_code = $5 AND subject_key = $6",
                ),
                [
                    now.label.map(|l| l.code().to_owned()).into(),
                    labels.join(",").into(),
                    now.treasury_state.map(|s| s.code().to_owned()).into(),
                    serde_json::to_string(&now).map_err(invalid)?.into(),
                    after.0.clone().into(),
                    after.1.clone().into(),
                ],
            ))
            .await?;
        }
    }
}
