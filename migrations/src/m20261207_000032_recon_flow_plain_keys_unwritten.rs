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
use std::collections::BTreeSet;

use incasso_domain::reconciliation::{
    Assessment, EvidenceRef, FlowId, FlowTreasuryState, Subject, compose_labels, compose_plain,
    composed_flow,
};
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
/// counts: its row as composed with that flow now, composed with the flow from then on, and
/// the history row its flow's import did not write (the previous release reads a key's
/// history from its rows and its composed flow's).
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
                    "SELECT l.creditor_fiscal_code, l.subject_key, l.iuv, l.receipt_id, \
                     l.id_transfer, f.flow_id, fa.assessment AS flow_assessment FROM recon_label l \
                     JOIN recon_flow_line fl ON fl.iuv = l.iuv AND fl.receipt_id = l.receipt_id \
                     AND fl.id_transfer = l.id_transfer \
                     JOIN recon_flow f ON f.id = fl.flow_row_id \
                     AND f.creditor_fiscal_code = l.creditor_fiscal_code AND f.plain_keys_unwritten \
                     JOIN recon_label fa ON fa.creditor_fiscal_code = f.creditor_fiscal_code \
                     AND fa.subject_kind = 'flow' AND fa.flow_id = f.flow_id \
                     WHERE l.subject_kind = 'transfer' AND l.labels = 'RT_NO_IUF' \
                     AND l.treasury_state IS NULL AND l.composed_flow_id IS NULL \
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
            let line = (
                row.try_get::<String>("", "iuv")?,
                row.try_get::<String>("", "receipt_id")?,
                row.try_get::<i16>("", "id_transfer")?,
            );
            write_plain_change(manager, &after, &flow_id, line).await?;
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

/// An instant column as the engine orders it (SQLite keeps instants as text).
fn instant(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Postgres => column.to_owned(),
        _ => format!("julianday({column})"),
    }
}

/// Writes the history row of a plain key (`key`: creditor and subject key) that the import of
/// the first marked revision of `flow_id` holding its line since the key's own last change
/// left unwritten: at that import's time and with its document, the label a matching line
/// had with the flow's treasury state then.
async fn write_plain_change(
    manager: &SchemaManager<'_>,
    key: &(String, String),
    flow_id: &FlowId,
    (iuv, receipt_id, id_transfer): (String, String, i16),
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let sql = |text: String| match backend {
        DbBackend::Postgres => text,
        _ => text.replace('$', "?"),
    };
    let flow_key = serde_json::to_string(&Subject::Flow(flow_id.clone())).map_err(invalid)?;
    let (changed, imported) = (
        instant(backend, "c.changed_at"),
        instant(backend, "d.imported_at"),
    );
    let own = instant(backend, "k.changed_at");
    let Some(report) = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql(format!(
                "SELECT f.revision, d.id AS document_id, d.file_name, d.kind, \
                 (SELECT c.treasury_state FROM recon_label_change c \
                  WHERE c.creditor_fiscal_code = $1 AND c.subject_key = $7 \
                  AND {changed} <= {imported} ORDER BY {changed} DESC, c.id DESC LIMIT 1) AS state, \
                 (SELECT k.label FROM recon_label_change k \
                  WHERE k.creditor_fiscal_code = $1 AND k.subject_key = $6 \
                  ORDER BY {own} DESC, k.id DESC LIMIT 1) AS previous_label \
                 FROM recon_flow_line fl JOIN recon_flow f ON f.id = fl.flow_row_id \
                 JOIN recon_document d ON d.id = f.document_id \
                 WHERE f.creditor_fiscal_code = $1 AND f.flow_id = $2 AND f.plain_keys_unwritten \
                 AND fl.iuv = $3 AND fl.receipt_id = $4 AND fl.id_transfer = $5 \
                 AND NOT EXISTS (SELECT 1 FROM recon_label_change k \
                  WHERE k.creditor_fiscal_code = $1 AND k.subject_key = $6 AND {own} > {imported}) \
                 ORDER BY {imported} LIMIT 1"
            )),
            [
                key.0.clone().into(),
                flow_id.as_str().into(),
                iuv.into(),
                receipt_id.into(),
                id_transfer.into(),
                key.1.clone().into(),
                flow_key.into(),
            ],
        ))
        .await?
    else {
        return Ok(());
    };
    let Some(state) = report
        .try_get::<Option<String>>("", "state")?
        .as_deref()
        .and_then(FlowTreasuryState::parse)
    else {
        return Ok(());
    };
    let revision: i32 = report.try_get("", "revision")?;
    let document: uuid::Uuid = report.try_get("", "document_id")?;
    let labels = compose_labels(&BTreeSet::new(), state);
    let causes = serde_json::json!({
        "document": [
            document,
            report.try_get::<String>("", "file_name")?,
            report.try_get::<String>("", "kind")?,
        ],
        "evidence": [EvidenceRef::Flow(
            flow_id.clone(),
            <u32 as TryFrom<i32>>::try_from(revision).map_err(invalid)?,
        )],
    });
    let codes: Vec<&str> = labels.iter().map(|l| l.code()).collect();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql(
            "INSERT INTO recon_label_change (id, creditor_fiscal_code, subject_key, label, \
             labels, treasury_state, previous_label, causes, changed_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, d.imported_at FROM recon_document d \
             WHERE d.id = $9"
                .to_owned(),
        ),
        [
            uuid::Uuid::now_v7().into(),
            key.0.clone().into(),
            key.1.clone().into(),
            labels.first().map(|l| l.code().to_owned()).into(),
            codes.join(",").into(),
            state.code().to_owned().into(),
            report
                .try_get::<Option<String>>("", "previous_label")?
                .into(),
            serde_json::to_string(&causes).map_err(invalid)?.into(),
            document.into(),
        ],
    ))
    .await?;
    Ok(())
}
