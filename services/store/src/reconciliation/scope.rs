//! The neighbourhood of an import: which part of a creditor's evidence a document (or the
//! receipts booked since the last import) can relabel, read a slice at a time.
//!
//! A transfer key's label depends on the receipts and the latest flow lines of its IUV (double
//! payments and `/RFB/` matches are per IUV) and on the treasury state of its flows; a flow's
//! and a credit's on the flow headers and the credits (and an `/RFB/` credit's on its IUVs).
//! Flow headers and credits are few (a handful per PSP and day) and every import reads them
//! whole (the [`Skeleton`]); receipts and lines are many and are read by IUV, for the IUVs
//! the new evidence reaches: those of the document's lines and `/RFB/` credits, every IUV
//! of the flows whose component (contract §3) it changes, and the IUVs the receipt path
//! queued in `recon_pending_iuv` since the last import. Those IUVs are relabelled in slices
//! of [`IUVS_PER_SLICE`], each with the domain's [`Reconciler`] over the skeleton and that
//! slice's receipts and lines: so memory is bounded by the slice, not by the creditor's
//! receipts, and an import costs what it touches. The labels are the ones a classification of
//! the whole evidence gives, since each subject is assessed with every input its rules read.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::classify::{component_of_credit, component_of_flow};
use incasso_domain::reconciliation::{
    Assessment, CausaleReferences, CreditId, Evidence, EvidenceItem, EvidenceRef, FlowId,
    Reconciler, Relabel, ReportingFlow, Subject, TransferKey,
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use time::OffsetDateTime;
use uuid::Uuid;

use super::evidence::{self, Skeleton};
use super::{books, labels};
use crate::AppError;

/// IUVs (or keys) per statement that lists them: under SQLite's bind parameter limit.
pub(crate) const IUVS_PER_STATEMENT: usize = 10_000;

/// IUVs relabelled together: bounds the receipts and lines held in memory at once.
const IUVS_PER_SLICE: usize = IUVS_PER_STATEMENT;

/// What relabelling did.
#[derive(Debug, Default)]
pub(crate) struct Relabelled {
    /// History rows written (label changes, receipts caught up included).
    pub label_changes: usize,
    /// Ledger entries posted.
    pub ledger_entries: usize,
    /// Label changes by the label given, for the metrics once committed.
    pub counts: BTreeMap<&'static str, u64>,
}

/// The skeleton as domain evidence: every flow revision (without lines), credit and the
/// coverage.
fn skeleton_evidence(skeleton: &Skeleton) -> Result<Evidence, AppError> {
    let mut evidence = Evidence::new();
    for item in skeleton_items(skeleton, &mut BTreeMap::new()) {
        evidence
            .add(item)
            .map_err(|e| AppError::Internal(format!("stored evidence contradicts itself: {e}")))?;
    }
    Ok(evidence)
}

/// The skeleton's items, each flow revision with the lines `lines` holds for its row.
fn skeleton_items(
    skeleton: &Skeleton,
    lines: &mut BTreeMap<Uuid, Vec<incasso_domain::reconciliation::FlowLine>>,
) -> Vec<EvidenceItem> {
    let mut items: Vec<EvidenceItem> = skeleton
        .flows
        .iter()
        .map(|(row, flow)| {
            EvidenceItem::Flow(ReportingFlow {
                lines: lines.remove(row).unwrap_or_default(),
                ..flow.clone()
            })
        })
        .collect();
    items.extend(skeleton.credits.iter().cloned().map(EvidenceItem::Credit));
    items.extend(skeleton.coverage.map(EvidenceItem::TreasuryCoverage));
    items
}

/// The row holding each flow revision of the skeleton.
type Rows = BTreeMap<(FlowId, (OffsetDateTime, u32)), Uuid>;

fn rows_of(skeleton: &Skeleton) -> Rows {
    skeleton
        .flows
        .iter()
        .map(|(row, f)| ((f.flow_id.clone(), f.version()), *row))
        .collect()
}

/// The row holding the revision of `flow_id` that counts in `evidence`, when it is held.
fn latest_row(rows: &Rows, evidence: &Evidence, flow_id: &FlowId) -> Option<Uuid> {
    let latest = evidence.latest_flow(flow_id)?;
    rows.get(&(flow_id.clone(), latest.version())).copied()
}

/// Takes the IUVs the receipt path queued for `creditor`. Taken before any receipt is read:
/// a receipt whose row this removes was committed before, so the reads that follow see it.
/// Streamed: a day's catch-up takes a million rows, which are not held twice.
async fn take_pending(
    txn: &DatabaseTransaction,
    creditor: &str,
) -> Result<BTreeSet<String>, AppError> {
    use futures::TryStreamExt;
    use sea_orm::StreamTrait;
    let backend = ConnectionTrait::get_database_backend(txn);
    let sql = if backend == DbBackend::Postgres {
        "DELETE FROM recon_pending_iuv WHERE creditor_fiscal_code = $1 RETURNING iuv"
    } else {
        "DELETE FROM recon_pending_iuv WHERE creditor_fiscal_code = ? RETURNING iuv"
    };
    let mut rows = txn
        .stream_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [creditor.into()],
        ))
        .await?;
    let mut pending = BTreeSet::new();
    while let Some(row) = rows.try_next().await? {
        pending.insert(row.try_get::<String>("", "iuv")?);
    }
    Ok(pending)
}

/// Whether an IUV was queued, by its hash: a membership test that does not hold the queue's
/// strings a second time. A collision only posts a slice's `reported` targets once more,
/// which posts nothing.
struct Queued(std::collections::HashSet<u64>);

impl Queued {
    fn hash(iuv: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        iuv.hash(&mut hasher);
        hasher.finish()
    }

    fn of(iuvs: &BTreeSet<String>) -> Self {
        Self(iuvs.iter().map(|i| Self::hash(i)).collect())
    }

    fn contains(&self, iuv: &str) -> bool {
        self.0.contains(&Self::hash(iuv))
    }
}

/// The IUVs an `/RFB/`·`/RFS/` credit names.
fn credit_iuvs(evidence: &Evidence, id: &CreditId) -> Vec<String> {
    match evidence.credit(id).map(|h| &h.references) {
        Some(CausaleReferences::Iuvs(list)) => list.iter().map(|i| i.as_str().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// Adds `items` (one document's new evidence; none for a catch-up) to `creditor`'s labels and
/// books, relabelling what they and the receipts queued since the last import reach. An item
/// that contradicts the held evidence refuses the whole document (`refuse` makes the error).
pub(crate) async fn relabel(
    txn: &DatabaseTransaction,
    creditor: &str,
    skeleton: &Skeleton,
    items: &[EvidenceItem],
    document: Option<(Uuid, String, String)>,
    refuse: impl Fn(String) -> AppError,
    now: OffsetDateTime,
) -> Result<Relabelled, AppError> {
    let mut iuvs = take_pending(txn, creditor).await?;
    let pending = Queued::of(&iuvs);
    let before = skeleton_evidence(skeleton)?;
    let rows = rows_of(skeleton);
    let held_rows_all: BTreeSet<Uuid> = rows.values().copied().collect();
    let mut after = before.clone();
    for item in items {
        after.add(item.clone()).map_err(|e| refuse(e.to_string()))?;
    }

    // The flows whose component the new evidence changes, before and after it.
    let mut flows: BTreeSet<FlowId> = BTreeSet::new();
    for item in items {
        match item {
            EvidenceItem::Flow(flow) => {
                if before
                    .latest_flow(&flow.flow_id)
                    .is_some_and(|held| held.version() < flow.version())
                {
                    flows.extend(component_of_flow(&before, &flow.flow_id).flow_ids);
                }
                flows.extend(component_of_flow(&after, &flow.flow_id).flow_ids);
                iuvs.extend(flow.lines.iter().map(|l| l.key.iuv.as_str().to_owned()));
            }
            EvidenceItem::Credit(credit) => {
                flows.extend(component_of_credit(&after, &credit.id).flow_ids);
                iuvs.extend(credit_iuvs(&after, &credit.id));
            }
            EvidenceItem::TreasuryCoverage(day) => {
                let from = before.covered_through();
                let due: Vec<FlowId> = after
                    .latest_flows()
                    .filter(|f| {
                        f.regulation_date <= *day && from.is_none_or(|b| f.regulation_date > b)
                    })
                    .map(|f| f.flow_id.clone())
                    .collect();
                for flow_id in due {
                    flows.extend(component_of_flow(&after, &flow_id).flow_ids);
                }
            }
            EvidenceItem::Receipt(receipt) => {
                iuvs.insert(receipt.key.iuv.as_str().to_owned());
            }
        }
    }
    // Their lines' IUVs, in the revision held (which a new one may replace).
    let held_rows: Vec<Uuid> = flows
        .iter()
        .filter_map(|f| latest_row(&rows, &before, f))
        .collect();
    iuvs.extend(evidence::iuvs_of_flows(txn, &held_rows).await?);

    // An `/RFB/` credit naming several IUVs is assessed with all of them: such IUVs go
    // together, in the first slice.
    let groups: Vec<BTreeSet<String>> = after
        .credits()
        .map(|h| credit_iuvs(&after, &h.credit.id))
        .filter(|list| list.len() >= 2)
        .map(|list| list.into_iter().collect())
        .collect();
    let mut together: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut grew = false;
        for group in &groups {
            if group
                .iter()
                .any(|i| iuvs.contains(i) || together.contains(i))
                && !group.is_subset(&together)
            {
                together.extend(group.iter().cloned());
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    let mut slices: Vec<Vec<String>> = vec![together.iter().cloned().collect()];
    let mut slice = Vec::new();
    for iuv in iuvs {
        if together.contains(&iuv) {
            continue;
        }
        if slices.len() == 1 && slices[0].len() < IUVS_PER_SLICE {
            slices[0].push(iuv);
            continue;
        }
        slice.push(iuv);
        if slice.len() == IUVS_PER_SLICE {
            slices.push(std::mem::take(&mut slice));
        }
    }
    if !slice.is_empty() {
        slices.push(slice);
    }

    let reporting_changed = items.iter().any(|i| matches!(i, EvidenceItem::Flow(_)));
    let mut out = Relabelled::default();
    for (n, slice) in slices.iter().enumerate() {
        let first = n == 0;
        let in_slice: BTreeSet<&str> = slice.iter().map(String::as_str).collect();
        let owns = |subject: &Subject| match subject {
            Subject::Transfer(key) => in_slice.contains(key.iuv.as_str()),
            Subject::Flow(_) => first,
            Subject::Credit(id) => {
                let named = credit_iuvs(&after, id);
                if named.is_empty() {
                    first
                } else if named.len() >= 2 {
                    first && named.iter().any(|i| together.contains(i))
                } else {
                    in_slice.contains(named[0].as_str())
                }
            }
        };
        let ((receipts, notices), mut lines) = if slice.is_empty() {
            ((Vec::new(), BTreeMap::new()), BTreeMap::new())
        } else {
            (
                evidence::receipts_of_iuvs(txn, creditor, slice).await?,
                evidence::lines_of_iuvs(txn, &held_rows_all, slice).await?,
            )
        };
        let stored_keys: BTreeSet<TransferKey> =
            lines.values().flatten().map(|l| l.key.clone()).collect();
        let mut receipt_refs: BTreeMap<String, BTreeSet<EvidenceRef>> = BTreeMap::new();
        for item in &receipts {
            if let EvidenceItem::Receipt(r) = item {
                receipt_refs
                    .entry(r.key.iuv.as_str().to_owned())
                    .or_default()
                    .insert(item.reference());
            }
        }
        let mut held = receipts;
        held.extend(skeleton_items(skeleton, &mut lines));
        let mut reconciler = Reconciler::new();
        reconciler
            .apply(held)
            .map_err(|e| AppError::Internal(format!("stored evidence contradicts itself: {e}")))?;

        // Receipts booked since the last import, against the stored labels.
        let mut stored = if slice.is_empty() {
            BTreeMap::new()
        } else {
            labels::stored_of_iuvs(txn, creditor, slice).await?
        };
        if first {
            stored.extend(labels::stored_flows_and_credits(txn, creditor).await?);
        }
        let computed = reconciler.assessments();
        let subjects: BTreeSet<&Subject> = stored
            .keys()
            .chain(computed.keys())
            .filter(|s| owns(s))
            .collect();
        let mut catch_up = Vec::new();
        for subject in subjects {
            let previous: Option<&Assessment> = stored.get(subject);
            let current = computed.get(subject);
            if previous == current {
                continue;
            }
            let causes = match subject {
                Subject::Transfer(key) => receipt_refs
                    .get(key.iuv.as_str())
                    .cloned()
                    .unwrap_or_default(),
                _ => BTreeSet::new(),
            };
            catch_up.push(Relabel {
                subject: subject.clone(),
                previous: previous.cloned(),
                current: current.cloned(),
                causes,
            });
        }

        // The document's evidence, its lines cut to the slice.
        let sliced = items.iter().map(|item| match item {
            EvidenceItem::Flow(flow) => EvidenceItem::Flow(ReportingFlow {
                lines: flow
                    .lines
                    .iter()
                    .filter(|l| in_slice.contains(l.key.iuv.as_str()))
                    .cloned()
                    .collect(),
                ..flow.clone()
            }),
            other => other.clone(),
        });
        let changes: Vec<Relabel> = reconciler
            .apply(sliced)
            .map_err(|e| refuse(e.to_string()))?
            .into_iter()
            .filter(|c| owns(&c.subject))
            .collect();
        out.label_changes += labels::write(txn, creditor, &catch_up, None, now).await?;
        out.label_changes += labels::write(txn, creditor, &changes, document.clone(), now).await?;
        labels::add_counts(&mut out.counts, &catch_up);
        labels::add_counts(&mut out.counts, &changes);
        // A key's `reported` target reads its lines, its receipt and the receipt's booking:
        // only new lines or receipts booked since the last import (queued) change it. A
        // statement changes none.
        if reporting_changed || slice.iter().any(|iuv| pending.contains(iuv)) {
            out.ledger_entries += books::post_reported(
                txn,
                creditor,
                reconciler.evidence(),
                &notices,
                &stored_keys,
                now,
            )
            .await?;
        }
        // `/RFB/`·`/RFS/` credits cash their receipts directly: the slice holds every IUV
        // they name, and every other credit naming one of them.
        let iuv_credits: BTreeSet<CreditId> = after
            .credits()
            .filter(|h| matches!(h.references, CausaleReferences::Iuvs(_)))
            .map(|h| h.credit.id.clone())
            .filter(|id| owns(&Subject::Credit(id.clone())))
            .collect();
        out.ledger_entries += books::post_iuv_cashed(
            txn,
            creditor,
            reconciler.evidence(),
            &notices,
            &iuv_credits,
            now,
        )
        .await?;
    }

    // `cashed`: each changed component with its flows' whole latest lines.
    let mut done: BTreeSet<FlowId> = BTreeSet::new();
    for flow_id in &flows {
        if done.contains(flow_id) {
            continue;
        }
        let component = component_of_flow(&after, flow_id);
        done.extend(component.flow_ids.iter().cloned());
        if component.credit_ids.is_empty() {
            continue;
        }
        let rows: Vec<Uuid> = component
            .flow_ids
            .iter()
            .filter_map(|f| latest_row(&rows, &after, f))
            .collect();
        let mut lines = evidence::lines_of_flows(txn, &rows).await?;
        let mut evidence = Evidence::new();
        for item in skeleton_items(skeleton, &mut lines)
            .into_iter()
            .chain(items.iter().cloned())
        {
            evidence.add(item).map_err(|e| refuse(e.to_string()))?;
        }
        out.ledger_entries +=
            books::post_cashed(txn, creditor, &evidence, &component.credit_ids, now).await?;
    }
    Ok(out)
}
