//! Keys restated from their flows: a treasury document (credits, coverage) changes flows'
//! treasury standing, and with it the label of every key their lines report. A day's
//! statement reaches every flow of the day, so a million keys. Such a key is restated from
//! its stored assessment and its flow's new one (the domain's
//! [`incasso_domain::reconciliation::restate`]), read a page of the flows' lines at a time
//! with each line's stored label (on PostgreSQL the flows' lines merged in key order): its
//! receipts and lines are not read, nor is it classified again. A key whose row is composed
//! with its flow's when read (`composed_flow_id`, [`super::composed`]) is not written at all;
//! a row written before migration 31 is rewritten once, restated, with the column set. An IUV
//! whose key cannot be restated (reported by two flows, no label stored yet, named by an
//! `/RFB/` credit, or queued by a receipt booked since the last import, whose label the
//! queue's part catches up) is relabelled from its evidence like any other, and so is every
//! other key of it on the same page.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::{
    Assessment, Evidence, EvidenceItem, FlowId, Relabel, RestatedFlow, Subject, composed_flow,
    restate_transfer, restated_flows,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use crate::AppError;

/// One line of a held flow with its key's stored label.
pub(crate) struct LineLabel {
    iuv: String,
    /// The key's stored subject and assessment (JSON), when it has a label.
    stored: Option<(String, String)>,
    /// The flow its stored label is composed with when read (`composed_flow_id`).
    composed_flow_id: Option<String>,
    /// The IUV waits in the queue: a receipt of it was booked since the last import.
    queued: bool,
}

/// The columns a page reads besides its lines': the key's stored label and whether its IUV is
/// queued, for lines aliased `{line}` (`$1` is the creditor).
fn label_columns(line: &str) -> String {
    format!(
        "l.subject_key, l.assessment, l.composed_flow_id, \
         EXISTS (SELECT 1 FROM recon_pending_iuv p \
                 WHERE p.creditor_fiscal_code = $1 AND p.iuv = {line}.iuv) AS queued"
    )
}

/// The join to each line's stored label, for lines aliased `{line}`.
fn label_join(line: &str) -> String {
    format!(
        "LEFT JOIN recon_label l ON l.creditor_fiscal_code = $1 \
         AND l.subject_kind = 'transfer' AND l.iuv = {line}.iuv \
         AND l.receipt_id = {line}.receipt_id AND l.id_transfer = {line}.id_transfer"
    )
}

impl LineLabel {
    /// A row read with [`label_columns`].
    fn read(row: &sea_orm::QueryResult) -> Result<Self, AppError> {
        let key: Option<String> = row.try_get("", "subject_key")?;
        let assessment: Option<String> = row.try_get("", "assessment")?;
        Ok(Self {
            iuv: row.try_get("", "iuv")?,
            stored: key.zip(assessment),
            composed_flow_id: row.try_get("", "composed_flow_id")?,
            queued: row.try_get("", "queued")?,
        })
    }
}

/// Up to `limit` lines of the flow revision `row` after line `after`, each with its key's
/// stored label, and the last line read; `None` past its last line.
pub(crate) async fn page(
    db: &impl ConnectionTrait,
    creditor: &str,
    row: Uuid,
    after: Option<i32>,
    limit: usize,
) -> Result<Option<(Vec<LineLabel>, i32)>, AppError> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT f.line_number, f.iuv, {} \
         FROM recon_flow_line f {} \
         WHERE f.flow_row_id = $2 AND f.line_number > $3 \
         ORDER BY f.line_number LIMIT $4",
        label_columns("f"),
        label_join("f")
    );
    let sql = numbered(backend, sql);
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                creditor.into(),
                row.into(),
                after.unwrap_or(i32::MIN).into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    let mut last = None;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        last = Some(row.try_get::<i32>("", "line_number")?);
        lines.push(LineLabel::read(&row)?);
    }
    Ok(last.map(|last| (lines, last)))
}

/// The most flows whose lines one statement merges in key order ([`merged_page`]).
pub(crate) const FLOWS_PER_MERGE: usize = 200;

/// Where a merged read of flows' lines stands: the last key read and the flow (its place in
/// the list read) it came from, since one key may be a line of two flows.
#[derive(Debug, Clone)]
pub(crate) struct KeyCursor {
    iuv: String,
    receipt_id: String,
    id_transfer: i16,
    flow: usize,
}

/// Up to `limit` lines of the flow revisions `rows` (at most [`FLOWS_PER_MERGE`]) in key
/// order after `after`, merged across the flows, each with its key's stored label, and where
/// the read stands; `None` past the last. PostgreSQL only: it merges the flows' index scans
/// (`ix_recon_flow_line_flow_key`) and stops at `limit`; SQLite would sort every flow's
/// lines for each page, and reads flow by flow ([`page`]).
pub(crate) async fn merged_page(
    db: &impl ConnectionTrait,
    creditor: &str,
    rows: &[Uuid],
    after: Option<&KeyCursor>,
    limit: usize,
) -> Result<Option<(Vec<LineLabel>, KeyCursor)>, AppError> {
    debug_assert!(rows.len() <= FLOWS_PER_MERGE);
    if rows.is_empty() {
        return Ok(None);
    }
    let start = KeyCursor {
        iuv: String::new(),
        receipt_id: String::new(),
        id_transfer: i16::MIN,
        flow: 0,
    };
    let after = after.unwrap_or(&start);
    // A key equal to the cursor's is still to come from a flow after the cursor's.
    let branches: Vec<String> = (0..rows.len())
        .map(|n| {
            let compare = if n <= after.flow { ">" } else { ">=" };
            format!(
                "(SELECT {n} AS flow, iuv, receipt_id, id_transfer FROM recon_flow_line \
                 WHERE flow_row_id = ${} AND (iuv, receipt_id, id_transfer) {compare} ($2, $3, $4) \
                 ORDER BY iuv, receipt_id, id_transfer LIMIT $5)",
                n + 6
            )
        })
        .collect();
    let sql = format!(
        "SELECT m.flow, m.iuv, m.receipt_id, m.id_transfer, {} \
         FROM (SELECT * FROM ({}) u ORDER BY iuv, receipt_id, id_transfer, flow LIMIT $5) m {} \
         ORDER BY m.iuv, m.receipt_id, m.id_transfer, m.flow",
        label_columns("m"),
        branches.join(" UNION ALL "),
        label_join("m")
    );
    let mut values: Vec<sea_orm::Value> = vec![
        creditor.into(),
        after.iuv.clone().into(),
        after.receipt_id.clone().into(),
        after.id_transfer.into(),
        i64::try_from(limit).unwrap_or(i64::MAX).into(),
    ];
    values.extend(rows.iter().map(|row| sea_orm::Value::from(*row)));
    let found = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    let mut last = None;
    let mut lines = Vec::with_capacity(found.len());
    for row in found {
        let line = LineLabel::read(&row)?;
        last = Some(KeyCursor {
            iuv: line.iuv.clone(),
            receipt_id: row.try_get("", "receipt_id")?,
            id_transfer: row.try_get("", "id_transfer")?,
            flow: usize::try_from(row.try_get::<i32>("", "flow")?).unwrap_or(usize::MAX),
        });
        lines.push(line);
    }
    Ok(last.map(|last| (lines, last)))
}

/// SQL for the engine: PostgreSQL's `$n` as they are, SQLite's as `?n`.
pub(super) fn numbered(backend: DbBackend, sql: String) -> String {
    if backend == DbBackend::Postgres {
        sql
    } else {
        sql.replace('$', "?")
    }
}

/// `$first, $first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values of `column` in the rows `sql` returns (with `values`), added to `out`.
async fn collect_column<T: sea_orm::TryGetable + Ord>(
    db: &impl ConnectionTrait,
    sql: String,
    values: Vec<sea_orm::Value>,
    column: &str,
    out: &mut BTreeSet<T>,
) -> Result<(), AppError> {
    let backend = db.get_database_backend();
    let sql = numbered(backend, sql);
    for row in db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
    {
        out.insert(row.try_get::<T>("", column)?);
    }
    Ok(())
}

/// The flow revisions among `rows` whose keys were all written composed with their flow
/// (`recon_flow.keys_composed`, [`super::composed`]): a statement reaching them reads none of
/// their keys but those [`iuvs_not_left_composed`] finds.
pub(crate) async fn composed_rows(
    db: &impl ConnectionTrait,
    rows: &[Uuid],
) -> Result<BTreeSet<Uuid>, AppError> {
    let mut out = BTreeSet::new();
    for chunk in rows.chunks(FLOWS_PER_MERGE) {
        let sql = format!(
            "SELECT id FROM recon_flow WHERE keys_composed AND id IN ({})",
            placeholders(1, chunk.len())
        );
        let values = chunk.iter().map(|r| (*r).into()).collect();
        collect_column(db, sql, values, "id", &mut out).await?;
    }
    Ok(out)
}

/// Marks the flow revisions of `document` whose keys its import has just labelled as composed
/// with their flow: a first revision, or one whose earlier revisions all are (a revision's
/// unchanged keys keep the rows the earlier one left).
pub(crate) async fn mark_composed(
    db: &impl ConnectionTrait,
    document: Uuid,
) -> Result<(), AppError> {
    let backend = db.get_database_backend();
    let sql = numbered(
        backend,
        "UPDATE recon_flow SET keys_composed = TRUE WHERE document_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM recon_flow o \
         WHERE o.creditor_fiscal_code = recon_flow.creditor_fiscal_code \
         AND o.flow_id = recon_flow.flow_id AND o.id <> recon_flow.id AND NOT o.keys_composed)"
            .to_owned(),
    );
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [document.into()],
    ))
    .await?;
    Ok(())
}

/// The IUVs of the lines of the flow revisions `rows` (composed ones: [`composed_rows`]) that
/// a statement cannot leave composed with their flow, relabelled from their evidence instead:
/// a key another flow reports too (its label is not composed), an IUV queued by a receipt
/// booked since the last import (its catch-up is recorded first), and those of `named` (the
/// IUVs `/RFB/` credits name). One pass over the flows' lines, however many keys they hold.
pub(crate) async fn iuvs_not_left_composed(
    db: &impl ConnectionTrait,
    creditor: &str,
    rows: &[Uuid],
    named: &BTreeSet<String>,
) -> Result<BTreeSet<String>, AppError> {
    let mut out = BTreeSet::new();
    for chunk in rows.chunks(FLOWS_PER_MERGE) {
        // Two queries joined by UNION rather than one testing `EXISTS … OR EXISTS …`: an OR
        // of subqueries is evaluated line by line (a million's statement probed both for each
        // of its million lines: 13.8 s to find none), each EXISTS alone is a semi-join.
        let rows = placeholders(2, chunk.len());
        let sql = format!(
            "SELECT a.iuv FROM recon_flow_line a JOIN recon_flow fa ON fa.id = a.flow_row_id \
             WHERE a.flow_row_id IN ({rows}) AND \
             EXISTS (SELECT 1 FROM recon_flow_line b JOIN recon_flow fb ON fb.id = b.flow_row_id \
                     WHERE b.iuv = a.iuv AND b.receipt_id = a.receipt_id \
                     AND b.id_transfer = a.id_transfer AND fb.creditor_fiscal_code = $1 \
                     AND fb.flow_id <> fa.flow_id) \
             UNION SELECT a.iuv FROM recon_flow_line a WHERE a.flow_row_id IN ({rows}) AND \
             EXISTS (SELECT 1 FROM recon_pending_iuv p \
                     WHERE p.creditor_fiscal_code = $1 AND p.iuv = a.iuv)"
        );
        let mut values: Vec<sea_orm::Value> = vec![creditor.into()];
        values.extend(chunk.iter().map(|r| sea_orm::Value::from(*r)));
        collect_column(db, sql, values, "iuv", &mut out).await?;
        let named: Vec<&String> = named.iter().collect();
        for names in named.chunks(super::scope::IUVS_PER_STATEMENT) {
            let sql = format!(
                "SELECT DISTINCT iuv FROM recon_flow_line WHERE flow_row_id IN ({}) \
                 AND iuv IN ({})",
                placeholders(1, chunk.len()),
                placeholders(1 + chunk.len(), names.len())
            );
            let mut values: Vec<sea_orm::Value> =
                chunk.iter().map(|r| sea_orm::Value::from(*r)).collect();
            values.extend(names.iter().map(|n| sea_orm::Value::from((*n).clone())));
            collect_column(db, sql, values, "iuv", &mut out).await?;
        }
    }
    Ok(out)
}

/// A treasury document's flows, as its keys are restated from them.
pub(crate) struct Restating {
    flows: BTreeMap<FlowId, RestatedFlow>,
}

/// What became of one key of a page.
// One lives at a time, returned and matched at once: boxing the change would cost an
// allocation per key of a day's statement for nothing.
#[allow(clippy::large_enum_variant)]
enum Restated {
    /// Its flow's new standing leaves it as stored, or it is composed with its flow's when
    /// read (its label changes with its flow's, recorded once in its flow's history).
    Unchanged,
    /// Its new assessment, with the causes.
    Changed(Relabel),
    /// It cannot be restated: its IUV is relabelled from evidence.
    FromEvidence,
}

/// A page restated: the keys' changes, and the IUVs to relabel from their evidence instead.
pub(crate) struct RestatedPage {
    pub changes: Vec<Relabel>,
    pub from_evidence: BTreeSet<String>,
}

impl Restating {
    /// For a document bringing only credits and coverage (a treasury document), given the
    /// `held` evidence (the skeleton: flow headers, credits, coverage); `None` for any other
    /// document, whose keys are relabelled from their evidence.
    pub(crate) fn of_statement(
        held: &Evidence,
        items: &[EvidenceItem],
    ) -> Result<Option<Self>, String> {
        let statement = !items.is_empty()
            && items.iter().all(|i| {
                matches!(
                    i,
                    EvidenceItem::Credit(_) | EvidenceItem::TreasuryCoverage(_)
                )
            });
        if !statement {
            return Ok(None);
        }
        let flows = restated_flows(held, items).map_err(|e| e.to_string())?;
        Ok(Some(Self { flows }))
    }

    /// Restates a page of held flows' keys. Lines of the IUVs `skip` are left alone (the
    /// document's own part relabels them), and the IUVs `from_evidence` (those an `/RFB/`
    /// credit names, whose credits are relabelled with them) are relabelled from evidence.
    pub(crate) fn restate(
        &self,
        lines: Vec<LineLabel>,
        skip: &BTreeSet<String>,
        from_evidence: &BTreeSet<String>,
    ) -> Result<RestatedPage, AppError> {
        let mut slow: BTreeSet<String> = BTreeSet::new();
        let mut changes: Vec<(String, Relabel)> = Vec::new();
        for line in lines {
            if skip.contains(&line.iuv) || slow.contains(&line.iuv) {
                continue;
            }
            let restated = match (
                &line.stored,
                line.queued || from_evidence.contains(&line.iuv),
            ) {
                (Some((key, assessment)), false) => {
                    self.restate_one(key, assessment, line.composed_flow_id.as_deref())?
                }
                _ => Restated::FromEvidence,
            };
            match restated {
                Restated::Changed(change) => changes.push((line.iuv, change)),
                Restated::Unchanged => {}
                Restated::FromEvidence => {
                    slow.insert(line.iuv);
                }
            }
        }
        // An IUV relabelled from its evidence is relabelled whole.
        let changes = changes
            .into_iter()
            .filter(|(iuv, _)| !slow.contains(iuv))
            .map(|(_, change)| change)
            .collect();
        Ok(RestatedPage {
            changes,
            from_evidence: slow,
        })
    }

    /// One key, from its stored key and assessment, and the flow its label is composed with
    /// when read (written so when its row was): such a row is left as it is.
    fn restate_one(
        &self,
        key: &str,
        stored: &str,
        composed_flow_id: Option<&str>,
    ) -> Result<Restated, AppError> {
        let corrupt = |e: serde_json::Error| {
            AppError::Internal(format!("stored label {key} is invalid: {e}"))
        };
        let previous: Assessment = serde_json::from_str(stored).map_err(corrupt)?;
        let Some(current) = restate_transfer(&previous, &self.flows) else {
            return Ok(Restated::FromEvidence);
        };
        let composed = composed_flow_id.is_some()
            && composed_flow(&previous).map(|f| f.as_str()) == composed_flow_id;
        if current == previous || composed {
            return Ok(Restated::Unchanged);
        }
        let causes = previous
            .flow_ids
            .iter()
            .filter_map(|f| self.flows.get(f))
            .flat_map(|f| f.causes.iter().cloned())
            .collect();
        Ok(Restated::Changed(Relabel {
            subject: serde_json::from_str::<Subject>(key).map_err(corrupt)?,
            previous: Some(previous),
            current: Some(current),
            causes,
        }))
    }
}
