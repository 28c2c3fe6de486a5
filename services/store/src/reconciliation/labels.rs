//! The labels as stored: one row per subject with its current assessment, and one history
//! row per label change naming the evidence that caused it and when.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::{
    Assessment, EvidenceRef, FlowId, FlowTreasuryState, Label, Relabel, Subject, TransferKey,
    compose_labels, compose_plain, composed_flow,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::plain;
use crate::batch::{OnConflict, Writes, is_in};
use crate::entity::{recon_label, recon_label_change};
use crate::{AppError, Store};

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("stored reconciliation label is invalid: {what}"))
}

/// The stored key of a subject.
pub(crate) fn subject_key(subject: &Subject) -> String {
    serde_json::to_string(subject).unwrap_or_default()
}

fn subject_kind(subject: &Subject) -> &'static str {
    match subject {
        Subject::Transfer(_) => "transfer",
        Subject::Credit(_) => "credit",
        Subject::Flow(_) => "flow",
    }
}

pub(crate) fn labels_text(labels: &BTreeSet<Label>) -> String {
    labels
        .iter()
        .map(|l| l.code())
        .collect::<Vec<_>>()
        .join(",")
}

/// A subject's identity as the columns the lists join and page on.
#[derive(Debug, Default)]
struct SubjectColumns {
    iuv: Option<String>,
    receipt_id: Option<String>,
    id_transfer: Option<i16>,
    flow_id: Option<String>,
    credit_id: Option<String>,
}

impl SubjectColumns {
    fn of(subject: &Subject) -> Self {
        match subject {
            Subject::Transfer(k) => Self {
                iuv: Some(k.iuv.as_str().to_owned()),
                receipt_id: Some(k.receipt_id.clone()),
                id_transfer: Some(i16::from(k.transfer_index.get())),
                ..Self::default()
            },
            Subject::Flow(id) => Self {
                flow_id: Some(id.as_str().to_owned()),
                ..Self::default()
            },
            Subject::Credit(id) => Self {
                credit_id: Some(id.as_str().to_owned()),
                ..Self::default()
            },
        }
    }
}

/// Why labels changed, as history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Causes {
    /// The imported document, when the change came from one: (id, file name, format).
    pub document: Option<(Uuid, String, String)>,
    /// The evidence that reached the subject.
    pub evidence: Vec<EvidenceRef>,
}

/// A subject's stored assessment, as it was written.
#[derive(Debug, Clone)]
pub(crate) struct StoredLabel {
    /// The assessment.
    pub assessment: Assessment,
    /// A transfer key's label is composed with its flow's when read (`composed_flow_id`);
    /// rows written before migration 31 are not, until a statement rewrites them.
    pub composed: bool,
}

/// Every stored assessment of `creditor`.
pub(crate) async fn stored(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<BTreeMap<Subject, StoredLabel>, AppError> {
    recon_label::Entity::find()
        .filter(recon_label::Column::CreditorFiscalCode.eq(creditor))
        .all(db)
        .await?
        .into_iter()
        .map(parse_stored)
        .collect()
}

fn parse_stored(row: recon_label::Model) -> Result<(Subject, StoredLabel), AppError> {
    let subject: Subject = serde_json::from_str(&row.subject_key).map_err(corrupt)?;
    let assessment: Assessment = serde_json::from_str(&row.assessment).map_err(corrupt)?;
    Ok((
        subject,
        StoredLabel {
            assessment,
            composed: row.composed_flow_id.is_some(),
        },
    ))
}

/// The stored assessments of `creditor`'s transfer keys of the IUVs `iuvs`; `consecutive`
/// when they are a run of the IUVs' order (a catch-up's slice of the queue).
///
/// A run is also bounded by its least and greatest IUV. When the table's statistics are
/// older than its rows (a first catch-up of a day, whose labels the same transaction
/// writes), PostgreSQL plans `iuv = ANY(…)` as a walk of every transfer label of the
/// creditor with the IUVs as a filter, so each slice read every label written before it:
/// 0.3 s a slice by the end of a million (141 s of the refresh, 70-75 s with the bounds). IUVs
/// spread over the day (a flow's) are not bounded: the planner then walks the range even
/// with fresh statistics, 75 ms against 22 ms for 2,500 IUVs of a flow. An `unnest` joined
/// to a `LATERAL` lookup per IUV was tried and was worse: with stale statistics the planner
/// took the (creditor, kind) prefix of another index for each IUV.
pub(crate) async fn stored_of_iuvs(
    db: &impl ConnectionTrait,
    creditor: &str,
    iuvs: &[String],
    consecutive: bool,
) -> Result<BTreeMap<Subject, StoredLabel>, AppError> {
    let (Some(least), Some(greatest)) = (iuvs.iter().min(), iuvs.iter().max()) else {
        return Ok(BTreeMap::new());
    };
    let mut query = recon_label::Entity::find()
        .filter(recon_label::Column::CreditorFiscalCode.eq(creditor))
        .filter(recon_label::Column::SubjectKind.eq("transfer"));
    if consecutive {
        query = query
            .filter(recon_label::Column::Iuv.gte(least.as_str()))
            .filter(recon_label::Column::Iuv.lte(greatest.as_str()));
    }
    query
        .filter(is_in(
            db.get_database_backend(),
            recon_label::Column::Iuv,
            iuvs.to_vec(),
        ))
        .all(db)
        .await?
        .into_iter()
        .map(parse_stored)
        .collect()
}

/// The stored assessments of `creditor`'s flows and credits.
pub(crate) async fn stored_flows_and_credits(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<BTreeMap<Subject, Assessment>, AppError> {
    recon_label::Entity::find()
        .filter(recon_label::Column::CreditorFiscalCode.eq(creditor))
        .filter(recon_label::Column::SubjectKind.is_in(["flow", "credit"]))
        .all(db)
        .await?
        .into_iter()
        .map(|row| parse_stored(row).map(|(s, l)| (s, l.assessment)))
        .collect()
}

/// Adds the label changes among `changes` to `counts`, by the label given (`none` when a
/// subject lost its label), for the reconciliation metrics.
pub(crate) fn add_counts(counts: &mut BTreeMap<&'static str, u64>, changes: &[Relabel]) {
    for change in changes.iter().filter(|c| c.is_label_change()) {
        let label = change
            .current
            .as_ref()
            .and_then(|c| c.label)
            .map_or("none", Label::code);
        *counts.entry(label).or_default() += 1;
    }
}

/// Records label changes counted by [`add_counts`], once committed.
pub(crate) fn record_counts(counts: BTreeMap<&'static str, u64>) {
    for (label, count) in counts {
        incasso_telemetry::metrics().reconciliation_labels(label, count);
    }
}

/// The label row's key, which a new assessment of the subject replaces.
const LABEL_KEY: &[&str] = &["creditor_fiscal_code", "subject_key"];

/// Writes the changes: the label rows, and a history row for each label change. A day's
/// import changes hundreds of thousands of labels: rows go in multi-row statements
/// ([`crate::batch`]), a subject's row replaced in place (an upsert), and on PostgreSQL the
/// labels and their history travel in one statement. A subject that lost its assessment
/// (rare: a flow revision no longer naming it) has its row deleted.
pub(crate) async fn write(
    txn: &DatabaseTransaction,
    creditor: &str,
    changes: &[Relabel],
    document: Option<(Uuid, String, String)>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let mut rows = Vec::with_capacity(changes.len());
    let mut changed = Vec::new();
    let keys: Vec<String> = changes.iter().map(|c| subject_key(&c.subject)).collect();
    let gone: Vec<String> = changes
        .iter()
        .zip(&keys)
        .filter(|(c, _)| c.current.is_none())
        .map(|(_, k)| k.clone())
        .collect();
    for chunk in gone.chunks(super::scope::IUVS_PER_STATEMENT) {
        recon_label::Entity::delete_many()
            .filter(recon_label::Column::CreditorFiscalCode.eq(creditor))
            .filter(is_in(
                txn.get_database_backend(),
                recon_label::Column::SubjectKey,
                chunk.to_vec(),
            ))
            .exec(txn)
            .await?;
    }
    for (change, key) in changes.iter().zip(keys) {
        // The flow the key's label is composed with when read, from this change on.
        let composed = match (&change.subject, &change.current) {
            (Subject::Transfer(_), Some(current)) => {
                composed_flow(current).map(|f| f.as_str().to_owned())
            }
            _ => None,
        };
        if let Some(current) = &change.current {
            let identity = SubjectColumns::of(&change.subject);
            rows.push(recon_label::ActiveModel {
                creditor_fiscal_code: Set(creditor.to_owned()),
                subject_key: Set(key.clone()),
                subject_kind: Set(subject_kind(&change.subject).to_owned()),
                iuv: Set(identity.iuv),
                receipt_id: Set(identity.receipt_id),
                id_transfer: Set(identity.id_transfer),
                flow_id: Set(identity.flow_id),
                credit_id: Set(identity.credit_id),
                label: Set(current.label.map(|l| l.code().to_owned())),
                labels: Set(labels_text(&current.labels)),
                treasury_state: Set(current.treasury_state.map(|s| s.code().to_owned())),
                assessment: Set(serde_json::to_string(current).map_err(corrupt)?),
                updated_at: Set(now),
                composed_flow_id: Set(composed.clone()),
            });
        }
        if change.is_label_change() {
            let causes = Causes {
                document: document.clone(),
                evidence: change.causes.iter().cloned().collect(),
            };
            changed.push(recon_label_change::ActiveModel {
                id: Set(Uuid::now_v7()),
                creditor_fiscal_code: Set(creditor.to_owned()),
                subject_key: Set(key),
                label: Set(change
                    .current
                    .as_ref()
                    .and_then(|c| c.label)
                    .map(|l| l.code().to_owned())),
                labels: Set(change
                    .current
                    .as_ref()
                    .map(|c| labels_text(&c.labels))
                    .unwrap_or_default()),
                treasury_state: Set(change
                    .current
                    .as_ref()
                    .and_then(|c| c.treasury_state)
                    .map(|s| s.code().to_owned())),
                previous_label: Set(change
                    .previous
                    .as_ref()
                    .and_then(|c| c.label)
                    .map(|l| l.code().to_owned())),
                causes: Set(serde_json::to_string(&causes).map_err(corrupt)?),
                changed_at: Set(now),
                composed_flow_id: Set(composed),
            });
        }
    }
    let history = changed.len();
    if rows.is_empty() && changed.is_empty() {
        return Ok(history);
    }
    super::plans::with_cached_plans(txn, async {
        let mut writes = Writes::new(txn);
        writes
            .insert(rows, 14, OnConflict::Replace(LABEL_KEY))
            .await?;
        writes.insert(changed, 10, OnConflict::Fail).await?;
        writes.send().await
    })
    .await?;
    Ok(history)
}

/// One change of a subject's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelChangeRecord {
    /// When.
    pub changed_at: OffsetDateTime,
    /// The label before (`None`: new subject, or a flow).
    pub previous_label: Option<Label>,
    /// The label after (`None`: a flow, or the subject is gone).
    pub label: Option<Label>,
    /// Every condition after.
    pub labels: Vec<Label>,
    /// A flow's or a key's treasury state after (`CASHED`, ...).
    pub treasury_state: Option<String>,
    /// What caused it.
    pub causes: Causes,
}

impl Store {
    /// The current assessment of every reconciliation subject of `creditor`, each key's
    /// composed with its flow's.
    pub async fn reconciliation_assessments(
        &self,
        creditor: &str,
    ) -> Result<BTreeMap<Subject, Assessment>, AppError> {
        let all = stored(self.db(), creditor).await?;
        let flows: BTreeMap<Subject, Assessment> = all
            .iter()
            .filter(|(s, _)| matches!(s, Subject::Flow(_)))
            .map(|(s, l)| (s.clone(), l.assessment.clone()))
            .collect();
        let bare: Vec<TransferKey> = all
            .iter()
            .filter_map(|(s, l)| match s {
                Subject::Transfer(key) if plain::is_bare(&l.assessment, l.composed) => {
                    Some(key.clone())
                }
                _ => None,
            })
            .collect();
        let mut out = super::composed::compose_keys(all, &flows, &flows);
        if !bare.is_empty() {
            // Plain keys' bare rows, composed with the flow of their one line.
            let marked = plain::marked_lines(self.db(), creditor).await?;
            for key in bare {
                let Some(flow) = marked.get(&key) else {
                    continue;
                };
                if let Some(now) = flows
                    .get(&Subject::Flow(flow.clone()))
                    .and_then(|a| compose_plain(flow, a))
                {
                    out.insert(Subject::Transfer(key), now);
                }
            }
        }
        Ok(out)
    }

    /// A subject's label changes, oldest first. A key whose label is composed with its
    /// flow's (`composed_flow_id`) has the changes of its flow's treasury state among its own,
    /// each with the evidence and the time of the flow's change.
    pub async fn reconciliation_history(
        &self,
        creditor: &str,
        subject: &Subject,
    ) -> Result<Vec<LabelChangeRecord>, AppError> {
        let db = self.db();
        let own = history_rows(db, creditor, subject).await?;
        let Subject::Transfer(key) = subject else {
            return Ok(own.into_iter().map(|r| r.record).collect());
        };
        let following = following_of(db, creditor, key, &own).await?;
        if following.flows.is_empty() {
            return Ok(own.into_iter().map(|r| r.record).collect());
        }
        Ok(compose_history(own, following))
    }
}

/// What the history of the transfer key `key`, whose own rows are `own`, is composed with: the
/// flow its current row is composed with, the flows its rows followed, and the imports of marked
/// revisions holding its line, with those flows' history rows.
pub(super) async fn following_of(
    db: &impl ConnectionTrait,
    creditor: &str,
    key: &TransferKey,
    own: &[StoredChange],
) -> Result<Following, AppError> {
    let subject = Subject::Transfer(key.clone());
    let composed = recon_label::Entity::find_by_id((creditor.to_owned(), subject_key(&subject)))
        .one(db)
        .await?
        .and_then(|row| row.composed_flow_id)
        .map(|flow| FlowId::parse(&flow).map_err(corrupt))
        .transpose()?;
    // The imports that reported the key and left its row as it was ([`plain`]).
    let reports: Vec<plain::Report> = plain::reports_of(db, creditor, key)
        .await?
        .into_iter()
        .filter(|r| r.marked)
        .collect();
    let mut flows = BTreeMap::new();
    let followed = own.iter().filter_map(|r| r.composed.as_ref());
    for flow in composed
        .iter()
        .chain(followed)
        .chain(reports.iter().map(|r| &r.flow_id))
    {
        if !flows.contains_key(flow) {
            let rows = history_rows(db, creditor, &Subject::Flow(flow.clone())).await?;
            flows.insert(flow.clone(), rows);
        }
    }
    Ok(Following {
        composed,
        flows,
        reports,
    })
}

/// The history rows of a subject, oldest first.
pub(super) async fn history_rows(
    db: &impl ConnectionTrait,
    creditor: &str,
    subject: &Subject,
) -> Result<Vec<StoredChange>, AppError> {
    let parse_label = |code: Option<String>| -> Result<Option<Label>, AppError> {
        code.map(|c| Label::parse(&c).ok_or_else(|| corrupt(c)))
            .transpose()
    };
    recon_label_change::Entity::find()
        .filter(recon_label_change::Column::CreditorFiscalCode.eq(creditor))
        .filter(recon_label_change::Column::SubjectKey.eq(subject_key(subject)))
        .order_by_asc(recon_label_change::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let record = LabelChangeRecord {
                changed_at: row.changed_at,
                previous_label: parse_label(row.previous_label)?,
                label: parse_label(row.label)?,
                labels: row
                    .labels
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|c| Label::parse(c).ok_or_else(|| corrupt(c)))
                    .collect::<Result<_, _>>()?,
                treasury_state: row.treasury_state,
                causes: serde_json::from_str(&row.causes).map_err(corrupt)?,
            };
            Ok(StoredChange {
                id: row.id,
                record,
                composed: row
                    .composed_flow_id
                    .map(|f| FlowId::parse(&f).map_err(corrupt))
                    .transpose()?,
            })
        })
        .collect()
}

/// One history row as stored.
#[derive(Debug, Clone)]
pub(super) struct StoredChange {
    /// Its id: time-ordered, so rows of one instant read in the order written.
    id: Uuid,
    /// The change.
    record: LabelChangeRecord,
    /// The flow the key's label was composed with from this change on
    /// (`recon_label_change.composed_flow_id`; none for other subjects).
    composed: Option<FlowId>,
}

/// What a key reads as: its label, every condition and its treasury state.
type Reading = (Option<Label>, Vec<Label>, Option<String>);

/// What a key of the facts `facts` reads as when its flow is in `state`.
fn composed_reading(facts: &BTreeSet<Label>, state: FlowTreasuryState) -> Reading {
    let labels = compose_labels(facts, state);
    (
        labels.first().copied(),
        labels.into_iter().collect(),
        Some(state.code().to_owned()),
    )
}

/// Records that the key reads as `now` from `changed_at` for `causes`, unless it already does.
fn change_to(
    out: &mut Vec<LabelChangeRecord>,
    reads_as: &mut Option<Reading>,
    now: Reading,
    changed_at: OffsetDateTime,
    causes: Causes,
) {
    if reads_as.as_ref() == Some(&now) {
        return;
    }
    out.push(LabelChangeRecord {
        changed_at,
        previous_label: reads_as.as_ref().and_then(|r| r.0),
        label: now.0,
        labels: now.1.clone(),
        treasury_state: now.2.clone(),
        causes,
    });
    *reads_as = Some(now);
}

/// What a key's history is composed with besides its own rows.
pub(super) struct Following {
    /// The flow its current row is composed with (`recon_label.composed_flow_id`): its last
    /// own row's, whatever that row recorded (a row an earlier release wrote records none, and
    /// a rewrite that changed no label wrote no row). Each earlier own row follows the flow it
    /// recorded.
    composed: Option<FlowId>,
    /// The history rows of the flows the key followed and of the flows of `reports`.
    flows: BTreeMap<FlowId, Vec<StoredChange>>,
    /// The imports of marked revisions holding the key's line, which left its row as its
    /// receipt left it ([`plain`]): each is a change of the key's while its own rows say
    /// `RT_NO_IUF` alone (or while it follows that flow already), and its flow's changes after
    /// it are the key's.
    reports: Vec<plain::Report>,
}

/// One thing that happened to a key or its flows, in time order.
enum Event {
    /// One of the key's own rows, and the flow it follows from then on.
    Own(LabelChangeRecord, Option<FlowId>),
    Flow(FlowId, LabelChangeRecord),
    Report(plain::Report),
}

/// A key's history with its flows' changes composed in: while the key's label is composed
/// with a flow, each change of that flow's state that changes what the key reads as is a
/// change of the key's, with the flow's evidence and time; and an import that reported a
/// plain key without writing its row is the change its row did not record. An import that
/// wrote the key itself (its own rows name the import's document) says in those rows what it
/// did to the key, and its flow's row adds nothing; so does an own row saying what the key
/// already reads as.
fn compose_history(own: Vec<StoredChange>, following: Following) -> Vec<LabelChangeRecord> {
    compose_history_and_reports(own, following).0
}

/// [`compose_history`], and the positions in it of the changes the plain reports made (the
/// changes no row of the key's records: what writing the key back must write).
pub(super) fn compose_history_and_reports(
    own: Vec<StoredChange>,
    following: Following,
) -> (Vec<LabelChangeRecord>, BTreeSet<usize>) {
    let Following {
        composed,
        flows,
        reports,
    } = following;
    let own_documents: BTreeSet<Uuid> = own
        .iter()
        .filter_map(|r| r.record.causes.document.as_ref().map(|d| d.0))
        .collect();
    let last_own = own.last().map(|r| r.id);
    let mut events: Vec<(OffsetDateTime, Uuid, u8, Event)> = own
        .into_iter()
        .map(|r| {
            let follows = if Some(r.id) == last_own {
                composed.clone()
            } else {
                r.composed
            };
            (r.record.changed_at, r.id, 0, Event::Own(r.record, follows))
        })
        .collect();
    // The row each import wrote for a flow, by the import's document.
    let mut imports: BTreeMap<(FlowId, Uuid), Uuid> = BTreeMap::new();
    for (flow, rows) in flows {
        for StoredChange { id, record: r, .. } in rows {
            if let Some(document) = &r.causes.document {
                imports.entry((flow.clone(), document.0)).or_insert(id);
            }
            events.push((r.changed_at, id, 0, Event::Flow(flow.clone(), r)));
        }
    }
    // Just after its flow's row of the same import, else after everything of its instant.
    events.extend(
        reports
            .into_iter()
            .filter(|r| r.marked && !own_documents.contains(&r.document.0))
            .map(|r| {
                let after = imports
                    .get(&(r.flow_id.clone(), r.document.0))
                    .copied()
                    .unwrap_or(Uuid::max());
                (r.imported_at, after, 1, Event::Report(r))
            }),
    );
    // Oldest first: by the import's time, then in the order written.
    events.sort_by_key(|(at, id, rank, _)| (*at, *id, *rank));
    let of_this_key = |record: &LabelChangeRecord| {
        record
            .causes
            .document
            .as_ref()
            .is_some_and(|d| own_documents.contains(&d.0))
    };
    let mut out: Vec<LabelChangeRecord> = Vec::new();
    let mut from_reports: BTreeSet<usize> = BTreeSet::new();
    let mut reads_as: Option<Reading> = None;
    let mut state: BTreeMap<FlowId, FlowTreasuryState> = BTreeMap::new();
    // The flow whose changes of state are the key's now, and whether a report (not a row of
    // the key's) made it so: only then is the key still plain when the next report comes.
    let mut follows: Option<FlowId> = None;
    let mut follows_by_report = false;
    for (_, _, _, event) in events {
        match event {
            Event::Own(record, its_flow) => {
                let now = (
                    record.label,
                    record.labels.clone(),
                    record.treasury_state.clone(),
                );
                follows = now.2.as_ref().and(its_flow);
                follows_by_report = false;
                if reads_as.as_ref() != Some(&now) {
                    reads_as = Some(now);
                    out.push(record);
                }
            }
            Event::Flow(flow, record) => {
                let Some(now_state) = record
                    .treasury_state
                    .as_deref()
                    .and_then(FlowTreasuryState::parse)
                else {
                    continue;
                };
                state.insert(flow.clone(), now_state);
                if follows.as_ref() != Some(&flow) || of_this_key(&record) {
                    continue;
                }
                let Some((_, labels, Some(_))) = &reads_as else {
                    continue;
                };
                let now = composed_reading(&labels.iter().copied().collect(), now_state);
                change_to(
                    &mut out,
                    &mut reads_as,
                    now,
                    record.changed_at,
                    record.causes,
                );
            }
            Event::Report(report) => {
                let receipt_only = (Some(Label::RtNoIuf), vec![Label::RtNoIuf], None::<String>);
                // A row of the key's composed with the flow says what the key is (a divergent
                // line, a double payment): a later revision holding the same line, left
                // unwritten because nothing of the key changed, does not make it plain.
                let plain_now = reads_as.as_ref() == Some(&receipt_only)
                    || (follows_by_report && follows.as_ref() == Some(&report.flow_id));
                let Some(flow_state) = state.get(&report.flow_id).copied().filter(|_| plain_now)
                else {
                    continue;
                };
                follows = Some(report.flow_id.clone());
                follows_by_report = true;
                // A receipt with one matching line, in its flow's state.
                let now = composed_reading(&BTreeSet::new(), flow_state);
                let causes = Causes {
                    document: Some(report.document),
                    evidence: vec![EvidenceRef::Flow(report.flow_id, report.revision)],
                };
                let before = out.len();
                change_to(&mut out, &mut reads_as, now, report.imported_at, causes);
                if out.len() > before {
                    from_reports.insert(before);
                }
            }
        }
    }
    (out, from_reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(
        minute: u8,
        label: Option<Label>,
        state: Option<&str>,
        document: Option<u128>,
    ) -> StoredChange {
        let at = datetime!(2026-11-24 10:00 UTC) + time::Duration::minutes(i64::from(minute));
        StoredChange {
            id: Uuid::now_v7(),
            record: LabelChangeRecord {
                changed_at: at,
                previous_label: None,
                label,
                labels: label.into_iter().collect(),
                treasury_state: state.map(str::to_owned),
                causes: Causes {
                    document: document
                        .map(|d| (Uuid::from_u128(d), format!("{d}.xml"), "x".into())),
                    evidence: Vec::new(),
                },
            },
            composed: None,
        }
    }

    fn flow_id() -> FlowId {
        FlowId::parse("2026-11-24ABI03069-F1").unwrap()
    }

    /// A key composed with one flow whose rows are `flow`.
    fn following(flow: Vec<StoredChange>) -> Following {
        Following {
            composed: Some(flow_id()),
            flows: BTreeMap::from([(flow_id(), flow)]),
            reports: Vec::new(),
        }
    }

    fn summary(history: &[LabelChangeRecord]) -> Vec<(Option<Label>, Option<&str>, u8)> {
        history
            .iter()
            .map(|r| {
                let minute = (r.changed_at - datetime!(2026-11-24 10:00 UTC)).whole_minutes();
                (
                    r.label,
                    r.treasury_state.as_deref(),
                    u8::try_from(minute).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_flows_state_changes_are_its_keys_once_the_key_has_the_flow() {
        use Label::{IuvNoRt, RtIuf, RtIufTes, RtNoIuf};
        let own = vec![
            record(0, Some(RtNoIuf), None, None),
            record(2, Some(RtIuf), Some("PENDING"), Some(1)),
        ];
        let flow = vec![
            // Before the key had the flow: the flow's first row (same document as the key's).
            record(2, None, Some("PENDING"), Some(1)),
            record(5, None, Some("CASHED"), Some(2)),
            record(7, None, Some("DIV_IMP"), Some(3)),
        ];
        let history = compose_history(own, following(flow));
        assert_eq!(
            summary(&history),
            vec![
                (Some(RtNoIuf), None, 0),
                (Some(RtIuf), Some("PENDING"), 2),
                (Some(RtIufTes), Some("CASHED"), 5),
                (Some(Label::IufTesDivImp), Some("DIV_IMP"), 7),
            ]
        );
        assert_eq!(history[2].previous_label, Some(RtIuf));
        assert_eq!(history[2].causes.document.as_ref().unwrap().1, "2.xml");

        // An import that wrote the key itself tells it in the key's rows; a flow change that
        // leaves the key's labels and state as they are adds nothing.
        let own = vec![
            record(2, Some(IuvNoRt), Some("PENDING"), Some(1)),
            record(5, Some(RtIuf), Some("PENDING"), None),
            record(5, Some(RtIufTes), Some("CASHED"), Some(2)),
        ];
        let flow = vec![
            record(2, None, Some("PENDING"), Some(1)),
            record(5, None, Some("CASHED"), Some(2)),
            record(6, None, Some("CASHED"), Some(4)),
        ];
        assert_eq!(
            summary(&compose_history(own, following(flow))),
            vec![
                (Some(IuvNoRt), Some("PENDING"), 2),
                (Some(RtIuf), Some("PENDING"), 5),
                (Some(RtIufTes), Some("CASHED"), 5),
            ]
        );
    }

    #[test]
    fn a_keys_flow_changes_stay_in_its_history_once_the_key_is_written_otherwise() {
        use Label::{IufNoTes, RtIuf, RtIufTes, RtNoIuf};
        // Composed with its flow at 2; the flow cashed at 5; a second flow reported the key at
        // 8 (no longer composed); its first flow's change at 9 is no longer the key's.
        let mut reported = record(2, Some(RtIuf), Some("PENDING"), Some(1));
        reported.composed = Some(flow_id());
        let own = vec![
            record(0, Some(RtNoIuf), None, None),
            reported,
            record(8, Some(IufNoTes), Some("NO_TES"), Some(5)),
        ];
        let flow = vec![
            record(2, None, Some("PENDING"), Some(1)),
            record(5, None, Some("CASHED"), Some(2)),
            record(9, None, Some("DIV_IMP"), Some(6)),
        ];
        let history = compose_history(
            own,
            Following {
                composed: None,
                flows: BTreeMap::from([(flow_id(), flow)]),
                reports: Vec::new(),
            },
        );
        assert_eq!(
            summary(&history),
            vec![
                (Some(RtNoIuf), None, 0),
                (Some(RtIuf), Some("PENDING"), 2),
                (Some(RtIufTes), Some("CASHED"), 5),
                (Some(IufNoTes), Some("NO_TES"), 8),
            ]
        );
        assert_eq!(history[2].causes.document.as_ref().unwrap().1, "2.xml");
    }

    fn report(minute: u8, document: u128, marked: bool) -> plain::Report {
        plain::Report {
            flow_id: flow_id(),
            revision: 1,
            marked,
            document: (
                Uuid::from_u128(document),
                format!("{document}.xml"),
                "x".into(),
            ),
            imported_at: datetime!(2026-11-24 10:00 UTC)
                + time::Duration::minutes(i64::from(minute)),
        }
    }

    #[test]
    fn a_plain_keys_flow_import_is_its_change_though_its_row_was_left_as_it_was() {
        use Label::{Doppi, RtIuf, RtIufTes, RtNoIuf};
        // Its receipt gave it RT_NO_IUF; its flow came at 2 (document 1) and left its row so;
        // a statement cashed the flow at 5; a second payment made it DOPPI at 7, after which
        // its flow's changes are no longer its own.
        let own = vec![
            record(0, Some(RtNoIuf), None, None),
            record(7, Some(Doppi), None, Some(3)),
        ];
        let flow = vec![
            record(2, None, Some("PENDING"), Some(1)),
            record(5, None, Some("CASHED"), Some(2)),
            record(8, None, Some("DIV_IMP"), Some(4)),
        ];
        let history = compose_history(
            own,
            Following {
                composed: None,
                flows: BTreeMap::from([(flow_id(), flow.clone())]),
                reports: vec![report(2, 1, true)],
            },
        );
        assert_eq!(
            summary(&history),
            vec![
                (Some(RtNoIuf), None, 0),
                (Some(RtIuf), Some("PENDING"), 2),
                (Some(RtIufTes), Some("CASHED"), 5),
                (Some(Doppi), None, 7),
            ]
        );
        assert_eq!(history[1].previous_label, Some(RtNoIuf));
        assert_eq!(history[1].causes.document.as_ref().unwrap().1, "1.xml");
        assert_eq!(
            history[1].causes.evidence,
            vec![EvidenceRef::Flow(flow_id(), 1)]
        );
        assert_eq!(history[2].previous_label, Some(RtIuf));

        // A revision whose import wrote the key (its own row names the document), or one
        // imported without leaving plain keys unwritten, adds nothing of its own.
        let own = vec![
            record(0, Some(RtNoIuf), None, None),
            record(2, Some(RtIuf), Some("PENDING"), Some(1)),
        ];
        let history = compose_history(
            own,
            Following {
                composed: Some(flow_id()),
                flows: BTreeMap::from([(flow_id(), flow.clone())]),
                reports: vec![report(2, 1, true), report(6, 5, false)],
            },
        );
        assert_eq!(
            summary(&history),
            vec![
                (Some(RtNoIuf), None, 0),
                (Some(RtIuf), Some("PENDING"), 2),
                (Some(RtIufTes), Some("CASHED"), 5),
                (Some(Label::IufTesDivImp), Some("DIV_IMP"), 8),
            ]
        );
    }

    #[test]
    fn a_revision_repeating_a_divergent_line_adds_nothing_to_the_keys_history() {
        use Label::{IufNoTes, RtNoIuf};
        // Its receipt gave it RT_NO_IUF; revision 1 (document 1, marked) reported it with
        // another amount, and its import wrote it, composed with the flow; revision 2
        // (document 2, marked) repeats the line, so nothing of the key changed and its row was
        // not written. The key is not plain: revision 2 is no change of its, and the flow's
        // states are what they make of its divergent line (not of a matching one: RT_IUF).
        let mut divergent = record(2, Some(RtNoIuf), Some("PENDING"), Some(1));
        divergent.composed = Some(flow_id());
        let own = vec![record(0, Some(RtNoIuf), None, None), divergent];
        let flow = vec![
            record(2, None, Some("PENDING"), Some(1)),
            record(5, None, Some("NO_TES"), Some(3)),
        ];
        let history = compose_history(
            own,
            Following {
                composed: Some(flow_id()),
                flows: BTreeMap::from([(flow_id(), flow)]),
                reports: vec![report(2, 1, true), report(4, 2, true)],
            },
        );
        assert_eq!(
            summary(&history),
            vec![
                (Some(RtNoIuf), None, 0),
                (Some(RtNoIuf), Some("PENDING"), 2),
                (Some(IufNoTes), Some("NO_TES"), 5),
            ]
        );
    }

    proptest::proptest! {
        /// A plain key's history, its row left as its receipt left it and its flow's import
        /// told by the import's report, reads as the history of the same key written at that
        /// import and composed with its flow from then on, whatever its flow's states after.
        #[test]
        fn a_plain_keys_history_reads_as_the_written_keys(
            states in proptest::collection::vec(0..4usize, 1..7),
        ) {
            use FlowTreasuryState::{Cashed, DivImp, NoTes, Pending};
            let states: Vec<FlowTreasuryState> = states
                .into_iter()
                .map(|s| [Cashed, DivImp, NoTes, Pending][s])
                .collect();
            let code = |s: FlowTreasuryState| Some(s.code());
            // The flow's rows: its import (document 1) at minute 10, then a change a statement
            // (document n) made every ten minutes.
            let flow: Vec<_> = states
                .iter()
                .enumerate()
                .map(|(n, s)| {
                    let minute = u8::try_from(10 * (n + 1)).unwrap();
                    record(minute, None, code(*s), Some(n as u128 + 1))
                })
                .collect();
            let receipt = record(0, Some(Label::RtNoIuf), None, None);

            // Written: the import wrote the key's row, composed with its flow.
            let reading = composed_reading(&BTreeSet::new(), states[0]);
            let mut at_import = record(10, reading.0, code(states[0]), Some(1));
            at_import.record.labels = reading.1;
            at_import.composed = Some(flow_id());
            at_import.record.previous_label = Some(Label::RtNoIuf);
            let written = compose_history(
                vec![receipt.clone(), at_import],
                Following {
                    composed: Some(flow_id()),
                    flows: BTreeMap::from([(flow_id(), flow.clone())]),
                    reports: Vec::new(),
                },
            );
            // Plain: the row stays as the receipt left it; the import is a report.
            let plain = compose_history(
                vec![receipt],
                Following {
                    composed: None,
                    flows: BTreeMap::from([(flow_id(), flow)]),
                    reports: vec![report(10, 1, true)],
                },
            );
            let facts = |h: &[LabelChangeRecord]| {
                h.iter()
                    .map(|c| {
                        (
                            c.changed_at,
                            c.previous_label,
                            c.label,
                            c.labels.clone(),
                            c.treasury_state.clone(),
                            c.causes.document.as_ref().map(|d| d.0),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(facts(&plain), facts(&written));
        }
    }
}
