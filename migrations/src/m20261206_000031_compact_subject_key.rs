//! A reconciliation subject's stored key, compact: `t:IUV:index:receiptId` for a transfer
//! key, `f:flowId` for a flow, `c:creditId` for a credit, instead of the subject as JSON
//! (`{"Transfer":{"iuv":…,"receipt_id":…,"transfer_index":n}}`, 96 bytes for a transfer). The
//! key is in the label table's primary key, which every label write of every import goes
//! through (281 MB after a day of a million receipts, more than `shared_buffers`), and in
//! every history row. The IUV first keeps the keys in IUV order, as the JSON's constant prefix
//! did. Both tables' keys are rewritten here from the JSON; down writes the JSON back as
//! serde wrote it (no spaces, `"` and `\` escaped).
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 2] = ["recon_label", "recon_label_change"];

/// The JSON key's parts, as each engine reads them.
fn parts(backend: DbBackend) -> [&'static str; 5] {
    if backend == DbBackend::Postgres {
        [
            "(subject_key::json -> 'Transfer' ->> 'iuv')",
            "(subject_key::json -> 'Transfer' ->> 'transfer_index')",
            "(subject_key::json -> 'Transfer' ->> 'receipt_id')",
            "(subject_key::json ->> 'Flow')",
            "(subject_key::json ->> 'Credit')",
        ]
    } else {
        [
            "json_extract(subject_key, '$.Transfer.iuv')",
            "json_extract(subject_key, '$.Transfer.transfer_index')",
            "json_extract(subject_key, '$.Transfer.receipt_id')",
            "json_extract(subject_key, '$.Flow')",
            "json_extract(subject_key, '$.Credit')",
        ]
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let [iuv, index, receipt_id, flow, credit] = parts(manager.get_database_backend());
        for table in TABLES {
            db.execute_unprepared(&format!(
                "UPDATE {table} SET subject_key = CASE \
                 WHEN {iuv} IS NOT NULL THEN 't:' || {iuv} || ':' || {index} || ':' || {receipt_id} \
                 WHEN {flow} IS NOT NULL THEN 'f:' || {flow} \
                 ELSE 'c:' || {credit} END \
                 WHERE subject_key LIKE '{{%'"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        // The parts of `t:IUV:index:receiptId`: the IUV and the index hold no colon.
        let (iuv, index, receipt_id) = if postgres {
            (
                "split_part(subject_key, ':', 2)",
                "split_part(subject_key, ':', 3)",
                "substr(subject_key, length(split_part(subject_key, ':', 2)) \
                 + length(split_part(subject_key, ':', 3)) + 5)",
            )
        } else {
            (
                "substr(subject_key, 3, instr(substr(subject_key, 3), ':') - 1)",
                "substr(substr(subject_key, 3 + instr(substr(subject_key, 3), ':')), 1, \
                 instr(substr(subject_key, 3 + instr(substr(subject_key, 3), ':')), ':') - 1)",
                "substr(substr(subject_key, 3 + instr(substr(subject_key, 3), ':')), \
                 instr(substr(subject_key, 3 + instr(substr(subject_key, 3), ':')), ':') + 1)",
            )
        };
        let escaped = |text: &str| format!("replace(replace({text}, '\\', '\\\\'), '\"', '\\\"')");
        let rest = "substr(subject_key, 3)";
        for table in TABLES {
            db.execute_unprepared(&format!(
                "UPDATE {table} SET subject_key = CASE substr(subject_key, 1, 2) \
                 WHEN 't:' THEN '{{\"Transfer\":{{\"iuv\":\"' || {iuv} || '\",\"receipt_id\":\"' \
                   || {} || '\",\"transfer_index\":' || {index} || '}}}}' \
                 WHEN 'f:' THEN '{{\"Flow\":\"' || {} || '\"}}' \
                 ELSE '{{\"Credit\":\"' || {} || '\"}}' END \
                 WHERE subject_key NOT LIKE '{{%'",
                escaped(receipt_id),
                escaped(rest),
                escaped(rest),
            ))
            .await?;
        }
        Ok(())
    }
}
