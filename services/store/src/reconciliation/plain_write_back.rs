//! Writing plain keys back once their flow is old. A plain key left unwritten keeps its bare
//! row (`RT_NO_IUF` as stored, [`super::plain`]) until some later evidence reaches it, and the
//! filters by label that can read such a row otherwise (`RT_NO_IUF`, the finance office's
//! worklist of receipts no flow reported, and the labels a flow composes) walk every bare row
//! of the creditor with a probe of the flow lines' index each: a cost that grows with every
//! day since `plain_keys_composed` was turned on, not with the keys found. Writing back the
//! keys of flows imported some days ago, off the import's path, bounds it to the recent days
//! and leaves the day's imports as fast.
//!
//! Each such key is written as the import would have written it: its row composed with its
//! flow (what every reader already reads it as) and the history rows of the changes its
//! flow's imports made to it (what its history composed from the revisions' reports), each
//! naming the flow the key followed from then on. A key of the revision that a later import
//! wrote (a second payment made it `DOPPI`) gets those history rows too: its history also
//! composed its first flow's import from the revision's report. So no answer changes, and the key reads the
//! same to a release before migration 32 after its down. The revision is then unmarked: none of
//! its keys is bare any more, so readers stop looking for them and the next write-back skips
//! it.

use std::collections::BTreeSet;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    Statement, TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::reconciliation::{
    Assessment, EvidenceRef, FlowId, Subject, TransferKey, compose_plain, composed_flow,
};

use super::evidence::{in_list, lines_of_flows};
use super::import::lock_creditor;
use super::labels::{
    compose_history_and_reports, following_of, history_rows, labels_text, subject_key,
};
use super::plain::{bare_sql, is_bare};
use super::queries::counting_sql;
use super::restated::numbered;
use crate::entity::{recon_label, recon_label_change};
use crate::{AppError, Store};

/// What [`Store::write_back_plain_keys`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlainKeysWrittenBack {
    /// The marked flow revisions whose keys were looked at.
    pub revisions: usize,
    /// The bare rows written composed with their flow.
    pub keys: u64,
}

impl Store {
    /// Writes back the plain keys that `creditor`'s flow revisions imported before
    /// `imported_before` left unwritten: each bare row whose line is in such a marked revision
    /// that counts, composed with its flow, with the history rows of its flow's imports; the
    /// revision is then unmarked.
    /// Revision by revision, each in one transaction under the creditor's import lock: an
    /// import waits for at most one revision's keys and never sees half of them.
    pub async fn write_back_plain_keys(
        &self,
        creditor: &str,
        imported_before: OffsetDateTime,
    ) -> Result<PlainKeysWrittenBack, AppError> {
        let mut out = PlainKeysWrittenBack::default();
        for row_id in marked_revisions(self.db(), creditor, imported_before, None).await? {
            let txn = self.db().begin().await?;
            lock_creditor(&txn, creditor).await?;
            // Still marked and still the revision that counts, now that imports wait.
            let still = !marked_revisions(&txn, creditor, imported_before, Some(row_id))
                .await?
                .is_empty();
            if still && let Some((flow_id, flow)) = flow_of_revision(&txn, creditor, row_id).await?
            {
                out.revisions += 1;
                out.keys += write_back_revision(&txn, creditor, row_id, &flow_id, &flow).await?;
            }
            txn.commit().await?;
        }
        if out.keys > 0 {
            tracing::info!(
                creditor,
                revisions = out.revisions,
                keys = out.keys,
                "plain keys written back composed with their flows"
            );
        }
        Ok(out)
    }
}

/// The marked revisions that count of `creditor` whose document was imported before
/// `imported_before` (only `only`, when given), in the order stored.
async fn marked_revisions(
    db: &impl ConnectionTrait,
    creditor: &str,
    imported_before: OffsetDateTime,
    only: Option<Uuid>,
) -> Result<Vec<Uuid>, AppError> {
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = vec![creditor.into(), imported_before.into()];
    let only = match only {
        Some(row) => {
            values.push(row.into());
            " AND f.id = $3"
        }
        None => "",
    };
    let sql = numbered(
        backend,
        format!(
            "SELECT f.id FROM recon_flow f JOIN recon_document d ON d.id = f.document_id \
             WHERE f.creditor_fiscal_code = $1 AND f.plain_keys_unwritten AND {}{only} AND {} \
             ORDER BY f.id",
            // SQLite keeps instants as text: compared as instants.
            match backend {
                sea_orm::DbBackend::Postgres => "d.imported_at < $2",
                _ => "julianday(d.imported_at) < julianday($2)",
            },
            counting_sql(backend, "f")
        ),
    );
    db.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .into_iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

/// The flow of the revision stored as `row_id`, and the flow's current assessment.
async fn flow_of_revision(
    db: &impl ConnectionTrait,
    creditor: &str,
    row_id: Uuid,
) -> Result<Option<(FlowId, Assessment)>, AppError> {
    let backend = db.get_database_backend();
    let sql = numbered(
        backend,
        "SELECT f.flow_id, a.assessment FROM recon_flow f JOIN recon_label a \
         ON a.creditor_fiscal_code = f.creditor_fiscal_code AND a.subject_kind = 'flow' \
         AND a.flow_id = f.flow_id WHERE f.creditor_fiscal_code = $1 AND f.id = $2"
            .to_owned(),
    );
    let Some(row) = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [creditor.into(), row_id.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let flow_id =
        FlowId::parse(&row.try_get::<String>("", "flow_id")?).map_err(AppError::corrupt)?;
    let flow: Assessment = serde_json::from_str(&row.try_get::<String>("", "assessment")?)
        .map_err(AppError::corrupt)?;
    Ok(Some((flow_id, flow)))
}

/// Writes back the bare keys of the revision `row_id` of `flow_id` (assessed `flow` now);
/// returns how many.
async fn write_back_revision(
    txn: &DatabaseTransaction,
    creditor: &str,
    row_id: Uuid,
    flow_id: &FlowId,
    flow: &Assessment,
) -> Result<u64, AppError> {
    // A flow without a treasury state composes nothing: its bare rows read as stored.
    let Some(composed) = compose_plain(flow_id, flow) else {
        return Ok(0);
    };
    let keys: Vec<TransferKey> = lines_of_flows(txn, &[row_id])
        .await?
        .into_values()
        .flatten()
        .map(|line| line.key)
        .collect();
    let mut written = 0;
    for chunk in keys.chunks(super::scope::IUVS_PER_STATEMENT) {
        let bare = bare_keys(txn, creditor, chunk).await?;
        let mut history = Vec::new();
        // Every key of the revision, bare or written since by another import: the changes its
        // history composes from marked revisions' reports become its own rows, so it no longer
        // needs the revision's mark.
        for key in chunk {
            let subject = Subject::Transfer(key.clone());
            let own = history_rows(txn, creditor, &subject).await?;
            let following = following_of(txn, creditor, key, &own).await?;
            let (records, from_reports) = compose_history_and_reports(own, following);
            for change in from_reports.into_iter().map(|n| &records[n]) {
                let followed = change.causes.evidence.iter().find_map(|e| match e {
                    EvidenceRef::Flow(flow, _) => Some(flow),
                    _ => None,
                });
                history.push(recon_label_change::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    creditor_fiscal_code: Set(creditor.to_owned()),
                    subject_key: Set(subject_key(&subject)),
                    label: Set(change.label.map(|l| l.code().to_owned())),
                    labels: Set(labels_text(&change.labels.iter().copied().collect())),
                    treasury_state: Set(change.treasury_state.clone()),
                    previous_label: Set(change.previous_label.map(|l| l.code().to_owned())),
                    causes: Set(serde_json::to_string(&change.causes).map_err(AppError::corrupt)?),
                    changed_at: Set(change.changed_at),
                    composed_flow_id: Set(Some(followed.unwrap_or(flow_id).as_str().to_owned())),
                });
            }
        }
        let bare: Vec<String> = bare.into_iter().collect();
        written += write_composed(txn, creditor, &composed, &bare).await?;
        crate::batch::insert_chunked(txn, history, 10).await?;
    }
    // None of its keys is bare now: readers need not look for them, nor the next write-back.
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        numbered(
            backend,
            "UPDATE recon_flow SET plain_keys_unwritten = FALSE WHERE id = $1".to_owned(),
        ),
        [row_id.into()],
    ))
    .await?;
    Ok(written)
}

/// The subject keys among `keys` whose stored row is bare.
async fn bare_keys(
    db: &impl ConnectionTrait,
    creditor: &str,
    keys: &[TransferKey],
) -> Result<BTreeSet<String>, AppError> {
    let subject_keys: Vec<String> = keys
        .iter()
        .map(|k| subject_key(&Subject::Transfer(k.clone())))
        .collect();
    let mut out = BTreeSet::new();
    for row in recon_label::Entity::find()
        .filter(recon_label::Column::CreditorFiscalCode.eq(creditor))
        .filter(recon_label::Column::SubjectKey.is_in(subject_keys))
        .all(db)
        .await?
    {
        let assessment: Assessment =
            serde_json::from_str(&row.assessment).map_err(AppError::corrupt)?;
        if is_bare(&assessment, row.composed_flow_id.is_some()) {
            out.insert(row.subject_key);
        }
    }
    Ok(out)
}

/// Writes the bare rows among `keys` (subject keys) as `composed` with its flow; returns how
/// many.
async fn write_composed(
    db: &impl ConnectionTrait,
    creditor: &str,
    composed: &Assessment,
    keys: &[String],
) -> Result<u64, AppError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = vec![
        composed.label.map(|l| l.code().to_owned()).into(),
        labels_text(&composed.labels).into(),
        composed.treasury_state.map(|s| s.code().to_owned()).into(),
        serde_json::to_string(composed)
            .map_err(AppError::corrupt)?
            .into(),
        composed_flow(composed)
            .map(|f| f.as_str().to_owned())
            .into(),
        creditor.into(),
    ];
    let only = in_list(backend, "subject_key", keys, &mut values);
    // SQLite numbers the list's bare `?` after the others only when those are bare too.
    let p = |n: usize| match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    let sql = format!(
        "UPDATE recon_label SET label = {}, labels = {}, treasury_state = {}, assessment = {}, \
         composed_flow_id = {} WHERE creditor_fiscal_code = {} AND subject_kind = 'transfer' \
         AND {only} AND {}",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        bare_sql("recon_label"),
    );
    Ok(db
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .rows_affected())
}
