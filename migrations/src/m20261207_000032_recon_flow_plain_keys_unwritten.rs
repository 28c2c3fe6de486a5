//! A flow revision whose plain keys were not written. A key is plain when its flow alone
//! decides its label (one receipt, one line of the receipt's amount, no credit naming its
//! IUV: the domain's `reconciliation::plain`); nearly every key of a day is. Writing each one's
//! label and history row when its flow comes was more than half of what a flow import wrote
//! (docs/reconciliation.md, "Scaling the day", item 8). With
//! `[reconciliation] plain_keys_composed` on, an import leaves such a key's row as the receipt
//! left it (`RT_NO_IUF`, nothing else) and marks the revision here; whoever reads the key
//! composes it with its line's flow (the domain's `compose_plain`). FALSE (the default, a
//! constant: adding it rewrites nothing) for every revision imported otherwise, whose keys
//! were all written.
use incasso_domain::reconciliation::{Assessment, FlowId, compose_plain, composed_flow};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconFlow {
    Table,
    PlainKeysUnwritten,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .add_column(
                        ColumnDef::new(ReconFlow::PlainKeysUnwritten)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The previous release reads a key's stored row alone: first write each plain key's
        // label as this release reads it.
        write_back_plain_keys(manager).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ReconFlow::Table)
                    .drop_column(ReconFlow::PlainKeysUnwritten)
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

/// Rewrites every key left as its receipt left it whose line is in a marked revision that
/// counts: its row as composed with that flow now, composed with the flow from then on.
async fn write_back_plain_keys(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let sql = |text: &str| match backend {
        DbBackend::Postgres => text.to_owned(),
        _ => text.replace('$', "?"),
    };
    let (later, flow) = match backend {
        DbBackend::Postgres => ("o.created_at", "f.created_at"),
        _ => ("julianday(o.created_at)", "julianday(f.created_at)"),
    };
    let mut after = (String::new(), String::new());
    loop {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql(&format!(
                    "SELECT l.creditor_fiscal_code, l.subject_key, f.flow_id, \
                     fa.assessment AS flow_assessment FROM recon_label l \
                     JOIN recon_flow_line fl ON fl.iuv = l.iuv AND fl.receipt_id = l.receipt_id \
                     AND fl.id_transfer = l.id_transfer \
                     JOIN recon_flow f ON f.id = fl.flow_row_id \
                     AND f.creditor_fiscal_code = l.creditor_fiscal_code AND f.plain_keys_unwritten \
                     JOIN recon_label fa ON fa.creditor_fiscal_code = f.creditor_fiscal_code \
                     AND fa.subject_kind = 'flow' AND fa.flow_id = f.flow_id \
                     WHERE l.subject_kind = 'transfer' AND l.labels = 'RT_NO_IUF' \
                     AND l.composed_flow_id IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM recon_flow o \
                     WHERE o.creditor_fiscal_code = f.creditor_fiscal_code AND o.flow_id = f.flow_id \
                     AND ({later} > {flow} OR ({later} = {flow} AND o.revision > f.revision))) \
                     AND (l.creditor_fiscal_code, l.subject_key) > ($1, $2) \
                     ORDER BY l.creditor_fiscal_code, l.subject_key LIMIT $3"
                )),
                [after.0.clone().into(), after.1.clone().into(), PAGE.into()],
            ))
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            let creditor: String = row.try_get("", "creditor_fiscal_code")?;
            let key: String = row.try_get("", "subject_key")?;
            let flow_id: String = row.try_get("", "flow_id")?;
            let flow: String = row.try_get("", "flow_assessment")?;
            let flow_id = FlowId::parse(&flow_id).map_err(invalid)?;
            let flow: Assessment = serde_json::from_str(&flow).map_err(invalid)?;
            after = (creditor, key);
            let Some(now) = compose_plain(&flow_id, &flow) else {
                continue;
            };
            let labels: Vec<&str> = now.labels.iter().map(|l| l.code()).collect();
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                sql(
                    "UPDATE recon_label SET label = $1, labels = $2, treasury_state = $3, \
                     assessment = $4, composed_flow_id = $5 \
                     WHERE creditor_fiscal_code = $6 AND subject_key = $7",
                ),
                [
                    now.label.map(|l| l.code().to_owned()).into(),
                    labels.join(",").into(),
                    now.treasury_state.map(|s| s.code().to_owned()).into(),
                    serde_json::to_string(&now).map_err(invalid)?.into(),
                    composed_flow(&now).map(|f| f.as_str().to_owned()).into(),
                    after.0.clone().into(),
                    after.1.clone().into(),
                ],
            ))
            .await?;
        }
    }
}
