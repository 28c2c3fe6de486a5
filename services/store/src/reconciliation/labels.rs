//! The labels as stored: one row per subject with its current assessment, and one history
//! row per label change naming the evidence that caused it and when.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::{Assessment, EvidenceRef, Label, Relabel, Subject};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

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

fn labels_text(labels: &BTreeSet<Label>) -> String {
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

/// Every stored assessment of `creditor`.
pub(crate) async fn stored(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<BTreeMap<Subject, Assessment>, AppError> {
    recon_label::Entity::find()
        .filter(recon_label::Column::CreditorFiscalCode.eq(creditor))
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let subject: Subject = serde_json::from_str(&row.subject_key).map_err(corrupt)?;
            let assessment: Assessment = serde_json::from_str(&row.assessment).map_err(corrupt)?;
            Ok((subject, assessment))
        })
        .collect()
}

/// Counts the label changes among `changes`, committed, by the label given (`none` when a
/// subject lost its label), for the reconciliation metrics.
pub(crate) fn count_labels(changes: &[Relabel]) {
    let mut given: BTreeMap<&'static str, u64> = BTreeMap::new();
    for change in changes.iter().filter(|c| c.is_label_change()) {
        let label = change
            .current
            .as_ref()
            .and_then(|c| c.label)
            .map_or("none", Label::code);
        *given.entry(label).or_default() += 1;
    }
    for (label, count) in given {
        incasso_telemetry::metrics().reconciliation_labels(label, count);
    }
}

/// Writes the changes: the label rows, and a history row for each label change.
pub(crate) async fn write(
    db: &impl ConnectionTrait,
    creditor: &str,
    changes: &[Relabel],
    document: Option<(Uuid, String, String)>,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let mut history = 0;
    for change in changes {
        let key = subject_key(&change.subject);
        recon_label::Entity::delete_many()
            .filter(recon_label::Column::CreditorFiscalCode.eq(creditor))
            .filter(recon_label::Column::SubjectKey.eq(key.clone()))
            .exec(db)
            .await?;
        if let Some(current) = &change.current {
            let identity = SubjectColumns::of(&change.subject);
            recon_label::Entity::insert(recon_label::ActiveModel {
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
            })
            .exec_without_returning(db)
            .await?;
        }
        if change.is_label_change() {
            history += 1;
            let causes = Causes {
                document: document.clone(),
                evidence: change.causes.iter().cloned().collect(),
            };
            recon_label_change::Entity::insert(recon_label_change::ActiveModel {
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
            })
            .exec_without_returning(db)
            .await?;
        }
    }
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
    /// The current assessment of every reconciliation subject of `creditor`.
    pub async fn reconciliation_assessments(
        &self,
        creditor: &str,
    ) -> Result<BTreeMap<Subject, Assessment>, AppError> {
        stored(self.db(), creditor).await
    }

    /// A subject's label changes, oldest first.
    pub async fn reconciliation_history(
        &self,
        creditor: &str,
        subject: &Subject,
    ) -> Result<Vec<LabelChangeRecord>, AppError> {
        let parse_label = |code: Option<String>| -> Result<Option<Label>, AppError> {
            code.map(|c| Label::parse(&c).ok_or_else(|| corrupt(c)))
                .transpose()
        };
        recon_label_change::Entity::find()
            .filter(recon_label_change::Column::CreditorFiscalCode.eq(creditor))
            .filter(recon_label_change::Column::SubjectKey.eq(subject_key(subject)))
            .order_by_asc(recon_label_change::Column::Id)
            .all(self.db())
            .await?
            .into_iter()
            .map(|row| {
                Ok(LabelChangeRecord {
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
                })
            })
            .collect()
    }
}
