//! Plain keys left unwritten: a key whose flow alone decides its label (one receipt, one line
//! of the receipt's amount in one flow, no credit naming its IUV: the domain's
//! [`incasso_domain::reconciliation::plain`]) keeps the row its receipt gave it (`RT_NO_IUF`,
//! nothing else) when its flow comes, and whoever reads it composes it with that flow: its
//! label is the flow's composition of a matching line ([`compose_plain`]). Nearly every key of
//! a day is plain, and their label and history rows were more than half of what a flow's
//! import wrote (docs/reconciliation.md, "Plain keys composed when read").
//!
//! A flow revision whose plain keys were left so is marked (`recon_flow.plain_keys_unwritten`,
//! migration 32); an import marks its revisions when `[reconciliation] plain_keys_composed` is
//! on. A reader composes a key whose row is bare ([`is_bare`]) and whose one line is in a
//! marked revision that counts. A key stops being plain when anything else bears on it (a
//! second receipt, another line, a credit naming its IUV); it is then written like any other,
//! and its row is no longer bare.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    Assessment, Evidence, FlowId, FlowTreasuryState, Label, PlainKey, Relabel, Subject,
    TransferIndex, TransferKey, compose_labels, compose_plain, plain, receipt_only,
};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use uuid::Uuid;

use super::queries::counting_sql;
use super::restated::numbered;
use crate::AppError;

/// Whether a transfer key's stored row is the one its receipt alone gives, not composed with a
/// flow: the row a plain key keeps.
pub(crate) fn is_bare(assessment: &Assessment, composed: bool) -> bool {
    !composed && *assessment == receipt_only()
}

/// The flow revisions whose plain keys an import finds unwritten, and whether it leaves its
/// own so.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlainFlows {
    /// The held revisions (`recon_flow` rows) marked `plain_keys_unwritten`.
    pub marked: BTreeSet<Uuid>,
    /// The held revisions' rows, by flow and version.
    pub rows: BTreeMap<(FlowId, (time::OffsetDateTime, u32)), Uuid>,
    /// This import leaves its plain keys unwritten and marks its document's revisions.
    pub unwritten_now: bool,
}

impl PlainFlows {
    /// Whether the revision of `flow` that counts in `evidence` is marked: a held one as its
    /// row says, the document's own (not held yet) as this import leaves it.
    pub fn marked_in(&self, evidence: &Evidence, flow: &FlowId) -> bool {
        let Some(latest) = evidence.latest_flow(flow) else {
            return false;
        };
        match self.rows.get(&(flow.clone(), latest.version())) {
            Some(row) => self.marked.contains(row),
            None => self.unwritten_now,
        }
    }
}

/// The key's one line in `evidence`, when its flow's revision that counts is marked: the flow
/// a bare row of the key is composed with.
fn marked_flow<'e>(
    evidence: &'e Evidence,
    key: &TransferKey,
    marked: impl Fn(&FlowId) -> bool,
) -> Option<&'e FlowId> {
    match evidence.lines_of(key).as_slice() {
        [(flow, _)] if marked(&flow.flow_id) => Some(&flow.flow_id),
        _ => None,
    }
}

/// The stored assessments as they read: each bare key (`bare`) whose one line in `evidence`
/// is in a marked revision composed with that flow's assessment in `flows`.
pub(crate) fn compose_read(
    stored: &mut BTreeMap<Subject, Assessment>,
    bare: &BTreeSet<Subject>,
    evidence: &Evidence,
    flows: &BTreeMap<Subject, Assessment>,
    marked: impl Fn(&FlowId) -> bool,
) {
    for subject in bare {
        let Subject::Transfer(key) = subject else {
            continue;
        };
        let Some(flow) = marked_flow(evidence, key, &marked) else {
            continue;
        };
        if let Some(now) = flows
            .get(&Subject::Flow(flow.clone()))
            .and_then(|a| compose_plain(flow, a))
        {
            stored.insert(subject.clone(), now);
        }
    }
}

/// Whether `change` is a plain key's that this import leaves unwritten: its row is bare
/// (`bare`, and not written earlier in this slice), the key is plain in `evidence` (the
/// slice's, the document's added) with its line in a marked revision (`marked`), and its new
/// assessment is what a reader composes from that flow's (`flows`).
pub(crate) fn left_unwritten(
    change: &Relabel,
    bare: &BTreeSet<Subject>,
    evidence: &Evidence,
    flows: &BTreeMap<Subject, Assessment>,
    marked: impl Fn(&FlowId) -> bool,
) -> bool {
    let Subject::Transfer(key) = &change.subject else {
        return false;
    };
    if !bare.contains(&change.subject) {
        return false;
    }
    let Some(PlainKey::ReportedBy(flow)) = plain(evidence, key) else {
        return false;
    };
    if !marked(flow) {
        return false;
    }
    let composed = flows
        .get(&Subject::Flow(flow.clone()))
        .and_then(|a| compose_plain(flow, a));
    composed.is_some() && composed.as_ref() == change.current.as_ref()
}

/// The treasury states a flow can be in.
const STATES: [FlowTreasuryState; 4] = [
    FlowTreasuryState::Cashed,
    FlowTreasuryState::DivImp,
    FlowTreasuryState::NoTes,
    FlowTreasuryState::Pending,
];

/// The label a plain key reads as when its flow is in `state`: a receipt with one matching
/// line composed with it.
pub(crate) fn label_in(state: FlowTreasuryState) -> Option<Label> {
    compose_labels(&BTreeSet::new(), state).first().copied()
}

/// The labels a plain key can read as, in any state of its flow.
pub(crate) fn labels_read() -> BTreeSet<Label> {
    STATES.iter().filter_map(|s| label_in(*s)).collect()
}

/// SQL of the label a bare transfer label row aliased `row` reads as when its line is in a
/// marked revision that counts: its flow's composition of a matching line, from the flow's
/// treasury state; NULL when it has no such line.
pub(crate) fn label_sql(backend: DbBackend, row: &str) -> String {
    let mut cases = String::new();
    for state in STATES {
        if let Some(label) = label_in(state) {
            cases.push_str(&format!(
                " WHEN pa.treasury_state = '{}' THEN '{}'",
                state.code(),
                label.code()
            ));
        }
    }
    format!(
        "(SELECT CASE{cases} END FROM recon_flow_line pl \
         JOIN recon_flow pf ON pf.id = pl.flow_row_id \
         JOIN recon_label pa ON pa.creditor_fiscal_code = pf.creditor_fiscal_code \
         AND pa.subject_kind = 'flow' AND pa.flow_id = pf.flow_id \
         WHERE pl.iuv = {row}.iuv AND pl.receipt_id = {row}.receipt_id \
         AND pl.id_transfer = {row}.id_transfer \
         AND pf.creditor_fiscal_code = {row}.creditor_fiscal_code AND pf.plain_keys_unwritten \
         AND {} LIMIT 1)",
        counting_sql(backend, "pf")
    )
}

/// SQL true when a transfer label row aliased `row` is bare (see [`is_bare`]): the row a plain
/// key keeps reads `RT_NO_IUF` alone, with no flow and so no treasury state. (A key reported
/// with another amount by flows it is not composed with, two of them say, reads `RT_NO_IUF`
/// alone too, with its flows' state: it is not plain.)
pub(crate) fn bare_sql(row: &str) -> String {
    format!(
        "({row}.labels = '{code}' AND {row}.treasury_state IS NULL \
         AND {row}.composed_flow_id IS NULL)",
        code = Label::RtNoIuf.code()
    )
}

/// Whether any flow revision left its plain keys unwritten (none while the setting has never
/// been on).
pub(crate) async fn any_marked(db: &impl ConnectionTrait) -> Result<bool, AppError> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    Ok(crate::entity::recon_flow::Entity::find()
        .filter(crate::entity::recon_flow::Column::PlainKeysUnwritten.eq(true))
        .one(db)
        .await?
        .is_some())
}

/// The flow of each of `creditor`'s keys with exactly one line in marked revisions that
/// count: the flow a bare row of the key reads with.
pub(crate) async fn marked_lines(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<BTreeMap<TransferKey, FlowId>, AppError> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT fl.iuv, fl.receipt_id, fl.id_transfer, f.flow_id FROM recon_flow_line fl \
         JOIN recon_flow f ON f.id = fl.flow_row_id \
         WHERE f.creditor_fiscal_code = $1 AND f.plain_keys_unwritten AND {}",
        counting_sql(backend, "f")
    );
    let sql = numbered(backend, sql);
    let mut out: BTreeMap<TransferKey, Option<FlowId>> = BTreeMap::new();
    for row in db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [creditor.into()],
        ))
        .await?
    {
        let key = key_of(&row)?;
        let flow =
            FlowId::parse(&row.try_get::<String>("", "flow_id")?).map_err(AppError::corrupt)?;
        // A key of two such lines is not plain; its row is not bare either.
        out.entry(key)
            .and_modify(|f| *f = None)
            .or_insert(Some(flow));
    }
    Ok(out
        .into_iter()
        .filter_map(|(key, flow)| Some((key, flow?)))
        .collect())
}

fn key_of(row: &QueryResult) -> Result<TransferKey, AppError> {
    let iuv: String = row.try_get("", "iuv")?;
    let receipt_id: String = row.try_get("", "receipt_id")?;
    let id_transfer: i16 = row.try_get("", "id_transfer")?;
    TransferKey::new(
        Iuv::parse(&iuv).map_err(AppError::corrupt)?,
        &receipt_id,
        TransferIndex::new(i64::from(id_transfer)).map_err(AppError::corrupt)?,
    )
    .map_err(AppError::corrupt)
}

/// An import of a revision holding a key's line, as the key's history tells it.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The flow and the revision.
    pub flow_id: FlowId,
    pub revision: u32,
    /// Its revision's plain keys were left unwritten.
    pub marked: bool,
    /// The document that brought it: (id, file name, format), and when.
    pub document: (Uuid, String, String),
    pub imported_at: time::OffsetDateTime,
}

/// Every import of a flow revision holding `key`'s line, oldest first: where a plain key's
/// history finds the changes its bare row did not record.
pub(crate) async fn reports_of(
    db: &impl ConnectionTrait,
    creditor: &str,
    key: &TransferKey,
) -> Result<Vec<Report>, AppError> {
    let backend = db.get_database_backend();
    let sql = "SELECT f.flow_id, f.revision, f.plain_keys_unwritten, \
         d.id AS document_id, d.file_name, d.kind, d.imported_at \
         FROM recon_flow_line fl JOIN recon_flow f ON f.id = fl.flow_row_id \
         JOIN recon_document d ON d.id = f.document_id \
         WHERE f.creditor_fiscal_code = $1 AND fl.iuv = $2 AND fl.receipt_id = $3 \
         AND fl.id_transfer = $4 ORDER BY d.imported_at, f.revision";
    let sql = numbered(backend, sql.to_owned());
    db.query_all_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            creditor.into(),
            key.iuv.as_str().into(),
            key.receipt_id.clone().into(),
            i16::from(key.transfer_index.get()).into(),
        ],
    ))
    .await?
    .into_iter()
    .map(|row| {
        Ok(Report {
            flow_id: FlowId::parse(&row.try_get::<String>("", "flow_id")?)
                .map_err(AppError::corrupt)?,
            revision: u32::try_from(row.try_get::<i32>("", "revision")?)
                .map_err(AppError::corrupt)?,
            marked: row.try_get("", "plain_keys_unwritten")?,
            document: (
                row.try_get("", "document_id")?,
                row.try_get("", "file_name")?,
                row.try_get("", "kind")?,
            ),
            imported_at: row.try_get("", "imported_at")?,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use incasso_domain::reconciliation::FlowId;

    fn flow_in(state: FlowTreasuryState) -> Assessment {
        Assessment {
            label: None,
            labels: BTreeSet::new(),
            treasury_state: Some(state),
            flow_ids: BTreeSet::new(),
            credit_ids: BTreeSet::new(),
            iuvs: BTreeSet::new(),
            suggestions: Vec::new(),
        }
    }

    #[test]
    fn the_sql_reads_a_plain_key_as_the_domain_composes_it() {
        // The SQL's CASE is built from `label_in`; the readers in Rust use `compose_plain`.
        let flow = FlowId::parse("2026-12-01ABI03069-F1").unwrap();
        for state in STATES {
            let composed = compose_plain(&flow, &flow_in(state)).unwrap();
            assert_eq!(composed.label, label_in(state), "{state:?}");
            assert!(labels_read().contains(&composed.label.unwrap()));
        }
        assert!(!labels_read().contains(&Label::RtNoIuf));
    }

    #[test]
    fn only_the_row_a_receipt_alone_gives_is_bare() {
        assert!(is_bare(&receipt_only(), false));
        assert!(!is_bare(&receipt_only(), true));
        let mut named = receipt_only();
        named
            .iuvs
            .insert(incasso_domain::notice_number::Iuv::parse("01000000000000001").unwrap());
        assert!(!is_bare(&named, false));
    }
}
