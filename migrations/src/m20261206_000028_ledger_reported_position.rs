//! What each transfer key's `reported` entries have posted, kept per key: a flow revision's
//! keys are now journaled as one entry (`incasso_domain::ledger::settlement::merge_reported`),
//! so the per-key truth the next settlement reads (its target against what is posted) is a
//! position of its own, written in the same transaction as the entry. `amounts` lists the
//! key's non-zero amounts as `account=cents` separated by `;`; the cause columns are those of
//! the key's last posting, which a reversal names again. The books posted before this
//! migration, one entry per key, become the keys' positions here.
//!
//! A replica of an older release, still serving during a rolling upgrade, would go on posting
//! a `reported` entry per key without moving its position, and the next settlement would post
//! that key again. So from here a `reported` entry with a posting key is refused by a
//! trigger: such an import fails whole (nothing of it is stored) and is done again by a
//! current replica.
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LedgerReportedPosition {
    Table,
    CreditorFiscalCode,
    PostingKey,
    Amounts,
    ReportingFlowId,
    ReportingFlowRevision,
    ReceiptId,
    NoticeNumber,
    Iuv,
}

/// The trigger that refuses a `reported` entry posted per key.
const TRIGGER: &str = "ledger_entry_reported_per_flow";

/// Why: an older release is importing.
const REFUSED: &str = "a reported entry with a posting key is refused: since migration 28 \
     reported postings are journaled per flow revision (a replica of an older release is \
     importing: finish the upgrade)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use LedgerReportedPosition as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(string_len(P::CreditorFiscalCode, 11))
                    .col(text(P::PostingKey))
                    .col(text(P::Amounts))
                    .col(text_null(P::ReportingFlowId))
                    .col(integer_null(P::ReportingFlowRevision))
                    .col(text_null(P::ReceiptId))
                    .col(text_null(P::NoticeNumber))
                    .col(text_null(P::Iuv))
                    .primary_key(
                        Index::create()
                            .col(P::CreditorFiscalCode)
                            .col(P::PostingKey),
                    )
                    .to_owned(),
            )
            .await?;
        let aggregate = match manager.get_database_backend() {
            DbBackend::Postgres => "string_agg(a.account || '=' || CAST(a.cents AS TEXT), ';')",
            _ => "group_concat(a.account || '=' || CAST(a.cents AS TEXT), ';')",
        };
        // Each key's amounts summed per account, and the cause of its last entry (a per-key
        // entry names one notice).
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO ledger_reported_position (creditor_fiscal_code, posting_key, \
                 amounts, reporting_flow_id, reporting_flow_revision, receipt_id, \
                 notice_number, iuv) \
                 SELECT k.creditor_fiscal_code, k.posting_key, \
                 COALESCE((SELECT {aggregate} FROM (SELECT l.account, SUM(l.amount_cents) AS cents \
                 FROM ledger_entry s JOIN ledger_line l ON l.entry_sequence = s.sequence \
                 WHERE s.creditor_fiscal_code = k.creditor_fiscal_code \
                 AND s.posting_key = k.posting_key GROUP BY l.account \
                 HAVING SUM(l.amount_cents) <> 0) a), ''), \
                 e.reporting_flow_id, e.reporting_flow_revision, e.receipt_id, \
                 n.notice_number, n.iuv \
                 FROM (SELECT creditor_fiscal_code, posting_key, MAX(sequence) AS last_sequence \
                 FROM ledger_entry WHERE event_type = 'reported' AND posting_key IS NOT NULL \
                 GROUP BY creditor_fiscal_code, posting_key) k \
                 JOIN ledger_entry e ON e.sequence = k.last_sequence \
                 LEFT JOIN ledger_entry_notice n ON n.entry_sequence = e.sequence \
                 AND n.notice_index = 0"
            ))
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION incasso_refuse_per_key_reported() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{REFUSED}'; END $$"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER} BEFORE INSERT ON ledger_entry FOR EACH ROW \
                     WHEN (NEW.event_type = 'reported' AND NEW.posting_key IS NOT NULL) \
                     EXECUTE FUNCTION incasso_refuse_per_key_reported()"
                ))
                .await?;
            }
            _ => {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER} BEFORE INSERT ON ledger_entry \
                     WHEN NEW.event_type = 'reported' AND NEW.posting_key IS NOT NULL \
                     BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!("DROP TRIGGER {TRIGGER} ON ledger_entry"))
                    .await?;
                db.execute_unprepared("DROP FUNCTION incasso_refuse_per_key_reported()")
                    .await?;
            }
            _ => {
                db.execute_unprepared(&format!("DROP TRIGGER {TRIGGER}"))
                    .await?;
            }
        }
        manager
            .drop_table(
                Table::drop()
                    .table(LedgerReportedPosition::Table)
                    .to_owned(),
            )
            .await
    }
}
