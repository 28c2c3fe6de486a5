//! The neighbourhood of an import: which part of a creditor's evidence a document (or the
//! receipts booked since the last import) can relabel, read a slice at a time.
//!
//! A transfer key's label depends on the receipts and the latest flow lines of its IUV (double
//! payments and `/RFB/` matches are per IUV) and on the treasury state of its flows; a flow's
//! and a credit's on the flow headers and the credits (and an `/RFB/` credit's on its IUVs).
//! Flow headers and credits are few (a handful per PSP and day) and every import reads them
//! whole (the [`Skeleton`]); receipts and lines are many and are read by IUV, for the IUVs
//! the new evidence reaches: those of the document's lines and `/RFB/` credits, every IUV
//! of the flows whose component (contract §3) it changes (read a page at a time), and the
//! IUVs the receipt path queued in `recon_pending_iuv` since the last import (taken a chunk
//! at a time). Those IUVs are relabelled in slices of at most [`IUVS_PER_SLICE`], each with
//! the domain's [`Reconciler`] over the skeleton and that slice's receipts and lines: so
//! memory is bounded by the slice, not by the creditor's receipts nor by what one import
//! reaches, and an import costs what it touches. The labels are the ones a classification of
//! the whole evidence gives, since each subject is assessed with every input its rules read;
//! an IUV reached twice (a document's line whose receipt was queued) is relabelled twice, the
//! second time recording nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::classify::{component_of_credit, component_of_flow};
use incasso_domain::reconciliation::{
    Assessment, CausaleReferences, CreditId, Evidence, EvidenceItem, FlowId, Relabel,
    ReportingFlow, Subject,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};
use time::OffsetDateTime;
use uuid::Uuid;

use super::cashed_ahead::{self, CashedReads};
use super::composed;
use super::evidence::{self, Skeleton};
use super::plain::{self, PlainFlows};
use super::read_ahead::{Prepared, Reading, SliceReader, StoredLabels};
use super::restated::{self, Restating};
use super::{books, labels};
use crate::AppError;

/// IUVs (or keys) per statement that lists them: under SQLite's bind parameter limit.
pub(crate) const IUVS_PER_STATEMENT: usize = 10_000;

/// The most IUVs relabelled together: a slice is listed in one statement.
pub(crate) const IUVS_PER_SLICE: usize = IUVS_PER_STATEMENT;

/// IUVs relabelled together by default: bounds the receipts, lines, labels and postings held
/// in memory at once. A day's flows have more than 10,000 lines from about 800,000 receipts
/// on, and a full slice of 10,000 then took the import's peak from about 150 to 345 MiB; at
/// 2,500 the peak of a million receipts is within 35 MiB of 100,000's, and the day took no
/// longer (README, bench-recon).
pub(crate) const DEFAULT_IUVS_PER_SLICE: usize = 2_500;

/// When and how finely an import relabels.
#[derive(Debug, Clone)]
pub(crate) struct Relabelling {
    /// The import's time, of every label change and posting.
    pub now: OffsetDateTime,
    /// IUVs per slice, page and queue chunk (at most [`IUVS_PER_SLICE`]).
    pub iuvs_per_slice: usize,
    /// Where slices are read ahead from (`read_ahead`): the store's pool on PostgreSQL,
    /// `None` on SQLite, whose one connection is the import's.
    pub pool: Option<DatabaseConnection>,
    /// Plain keys' labels are left unwritten, composed when read ([`plain`]).
    pub plain_keys_composed: bool,
}

/// Where an import's IUVs come from, relabelled in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The document's own IUVs (its lines', its `/RFB/` credits').
    Document,
    /// The IUVs of the held flows whose component the document changes.
    Flows,
    /// The IUVs queued by receipts booked since the last import.
    Queue,
}

/// Where a slice sits in an import.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// The first slice of the import: it relabels the flows and the credits naming no IUV.
    import_first: bool,
    /// The first slice of its part: it holds the IUVs of `/RFB/` credits naming several.
    part_first: bool,
    /// The part is the document's own IUVs.
    part_of_document: bool,
    /// The part was taken from the queue (receipts booked since the last import).
    queued: bool,
}

/// What relabelling did.
#[derive(Debug, Default)]
pub(crate) struct Relabelled {
    /// Label changes recorded (receipts caught up included), and those of plain keys left
    /// unwritten ([`plain`]), which their readers compose. A key whose label changes with its
    /// flow's treasury state, its row not written (`composed`), is one change of its flow's.
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
pub(crate) fn skeleton_items(
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

/// Takes up to `limit` of the IUVs the receipt path queued for `creditor`, in IUV order after
/// `after`. Taken before any of their receipts is read: a receipt whose row this removes was
/// committed before, so the reads that follow see it. A day's catch-up queues a million IUVs,
/// taken a chunk at a time so that they are never held together; each chunk starts after the
/// last, so its scan does not walk the rows the transaction already removed. An IUV queued
/// meanwhile before `after` stays queued for the next import. Returns the IUVs taken and the
/// last one (where the next chunk starts), or `None` when nothing was queued.
async fn take_pending(
    txn: &DatabaseTransaction,
    creditor: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Option<(BTreeSet<String>, String)>, AppError> {
    let backend = ConnectionTrait::get_database_backend(txn);
    // On PostgreSQL the chunk's rows are deleted by their tuple ids: as `iuv IN (…)` the
    // delete was planned as a scan of the whole queue into a hash for each chunk (a million
    // rows scanned a hundred times in a day's catch-up).
    let sql = if backend == DbBackend::Postgres {
        "DELETE FROM recon_pending_iuv WHERE ctid = ANY(ARRAY(SELECT ctid FROM recon_pending_iuv \
         WHERE creditor_fiscal_code = $1 AND iuv > $2 ORDER BY iuv LIMIT $3)) RETURNING iuv"
    } else {
        "DELETE FROM recon_pending_iuv WHERE creditor_fiscal_code = ?1 AND iuv IN \
         (SELECT iuv FROM recon_pending_iuv WHERE creditor_fiscal_code = ?1 AND iuv > ?2 \
         ORDER BY iuv LIMIT ?3) RETURNING iuv"
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [creditor.into(), after.unwrap_or("").into(), limit.into()],
        ))
        .await?;
    let mut taken = BTreeSet::new();
    let mut last = None;
    for row in &rows {
        let iuv: String = row.try_get("", "iuv")?;
        if last.as_ref().is_none_or(|l| *l < iuv) {
            last = Some(iuv.clone());
        }
        // Queued before the receipt path stopped queueing them: such an IUV can match no
        // flow line or credit, and reading its receipts would fail every import.
        if Iuv::parse(&iuv).is_err() {
            tracing::warn!(%creditor, %iuv, "dropped from the labelling queue: not an IUV");
            continue;
        }
        taken.insert(iuv);
    }
    Ok(last.map(|last| (taken, last)))
}

/// The IUVs an `/RFB/`·`/RFS/` credit names.
fn credit_iuvs(evidence: &Evidence, id: &CreditId) -> Vec<String> {
    match evidence.credit(id).map(|h| &h.references) {
        Some(CausaleReferences::Iuvs(list)) => list.iter().map(|i| i.as_str().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// What every slice of one import reads alike.
struct Pass<'a, R> {
    txn: &'a DatabaseTransaction,
    creditor: &'a str,
    /// The document's evidence (none for a catch-up).
    items: &'a [EvidenceItem],
    document: Option<(Uuid, String, String)>,
    refuse: R,
    now: OffsetDateTime,
    iuvs_per_slice: usize,
    /// The held evidence with the document's added (flow lines aside).
    after: Evidence,
    /// Reads each slice's receipts and held lines, ahead when it can.
    reader: SliceReader,
    /// Slices planned and not yet being read.
    waiting: VecDeque<Planned>,
    /// The slices planned last (at most [`SLICES_READ_AHEAD`]), being read ahead while the
    /// one before them is relabelled.
    ahead: VecDeque<(Planned, Reading)>,
    /// A part before the queue brought IUVs (which the queue may hold again).
    parts_before: bool,
    /// The stored labels of the flows and the credits, kept as they are rewritten: a credit
    /// naming IUVs is relabelled with them, which may come in more than one part.
    stored_flows_and_credits: BTreeMap<Subject, Assessment>,
    /// The flows' stored labels as this import found them: what a key composed with its
    /// flow's read as before it (`composed`).
    flows_before: BTreeMap<Subject, Assessment>,
    /// Whether the document brings flow lines (so `reported` targets may move).
    reporting_changed: bool,
    /// The flow revisions whose plain keys are left unwritten.
    plain: PlainFlows,
}

/// How many slices are read ahead at once, each on a pooled connection of its own, while the
/// transaction relabels the slice before them. At a million receipts a slice's reads (index
/// probes into tables bigger than the shared buffers) take about as long as its writes, and
/// one reader kept the transaction waiting a quarter of the FdR import; two readers take
/// 3-9% off it (`bench-recon`, a million: 233.9 -> 212.2-226.4 s on a slower machine than the
/// README's earlier tables), for a third slice's evidence in memory (a few MB). More readers
/// would compete with the writer for the same two cores.
const SLICES_READ_AHEAD: usize = 2;

/// A slice of IUVs to relabel, where it sits, and the IUVs of its part an `/RFB/` credit
/// naming several of them keeps together (in the part's first slice).
struct Planned {
    slice: Vec<String>,
    place: Place,
    together: Arc<BTreeSet<String>>,
    /// Whether its stored labels can be read ahead with its evidence.
    stored: StoredLabels,
}

impl<R: Fn(String) -> AppError> Pass<'_, R> {
    /// Relabels `iuvs` in slices of `iuvs_per_slice`, the IUVs an `/RFB/` credit naming
    /// several of them brings all together in the first. The first slice of the import
    /// (`first`, cleared here) also relabels the flows and the credits naming no IUV, and runs
    /// even when there is no IUV. Each slice is read ahead while the slices planned before it
    /// (maybe of an earlier part) are relabelled, up to [`SLICES_READ_AHEAD`] at once; the
    /// last ones planned wait for the next call, or for [`Pass::finish`].
    async fn relabel_iuvs(
        &mut self,
        iuvs: &BTreeSet<String>,
        part: Part,
        first: &mut bool,
        out: &mut Relabelled,
    ) -> Result<(), AppError> {
        let planned = self.plan(iuvs, part, first);
        self.waiting.extend(planned);
        self.pump(out).await
    }

    /// Starts reading the slices waiting, each relabelling the oldest one read once more
    /// than [`SLICES_READ_AHEAD`] are being read.
    async fn pump(&mut self, out: &mut Relabelled) -> Result<(), AppError> {
        while self.start_next() {
            if self.ahead.len() > SLICES_READ_AHEAD {
                let (before, its_reading) = self.ahead.pop_front().expect("just pushed");
                self.relabel_planned(before, its_reading, out).await?;
            }
        }
        Ok(())
    }

    /// Starts reading the first slices waiting, as many as [`Pass::pump`] reads at once,
    /// relabelling none: their reads go on while the transaction does something else.
    fn prime(&mut self) {
        while self.ahead.len() <= SLICES_READ_AHEAD && self.start_next() {}
    }

    /// Starts reading the next slice waiting, if there is one.
    fn start_next(&mut self) -> bool {
        let Some(planned) = self.waiting.pop_front() else {
            return false;
        };
        let reading = self.reader.start(&planned.slice, planned.stored);
        self.ahead.push_back((planned, reading));
        true
    }

    /// Relabels the slices still waiting or being read (the import's last).
    async fn finish(&mut self, out: &mut Relabelled) -> Result<(), AppError> {
        self.pump(out).await?;
        while let Some((planned, reading)) = self.ahead.pop_front() {
            self.relabel_planned(planned, reading, out).await?;
        }
        self.reader.log_at_end();
        Ok(())
    }

    async fn relabel_planned(
        &mut self,
        planned: Planned,
        reading: Reading,
        out: &mut Relabelled,
    ) -> Result<(), AppError> {
        let prepared = self
            .reader
            .prepared(self.txn, &planned.slice, reading)
            .await?;
        self.relabel_slice(
            &planned.slice,
            planned.place,
            &planned.together,
            prepared,
            out,
        )
        .await
    }

    /// The slices of `iuvs`, a part of the import (see [`Pass::relabel_iuvs`]).
    fn plan(&mut self, iuvs: &BTreeSet<String>, part: Part, first: &mut bool) -> Vec<Planned> {
        if iuvs.is_empty() && !*first {
            return Vec::new();
        }
        // No slice of this part can read a label this import wrote: the document's part
        // comes first, and the queue's chunks are disjoint, like a part's slices. A held
        // flow's pages may share an IUV (one of several lines), and any part after another
        // may hold an IUV of it.
        let unwritten = match part {
            Part::Document => true,
            Part::Queue => !self.parts_before,
            Part::Flows => false,
        };
        if part != Part::Queue {
            self.parts_before |= !iuvs.is_empty();
        }
        let after = &self.after;
        // An `/RFB/` credit naming several IUVs is assessed with all of them: such IUVs go
        // together, in the first slice of the part.
        let groups: Vec<BTreeSet<String>> = after
            .credits()
            .map(|h| credit_iuvs(after, &h.credit.id))
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
            if together.contains(iuv) {
                continue;
            }
            if slices.len() == 1 && slices[0].len() < self.iuvs_per_slice {
                slices[0].push(iuv.clone());
                continue;
            }
            slice.push(iuv.clone());
            if slice.len() == self.iuvs_per_slice {
                slices.push(std::mem::take(&mut slice));
            }
        }
        if !slice.is_empty() {
            slices.push(slice);
        }
        let together = Arc::new(together);
        slices
            .into_iter()
            .enumerate()
            .map(|(n, slice)| {
                let queued = part == Part::Queue;
                Planned {
                    stored: if unwritten {
                        StoredLabels::Ahead {
                            consecutive: queued && (n > 0 || together.is_empty()),
                        }
                    } else {
                        StoredLabels::InTransaction
                    },
                    slice,
                    place: Place {
                        import_first: std::mem::take(first),
                        part_first: n == 0,
                        part_of_document: part == Part::Document,
                        queued,
                    },
                    together: Arc::clone(&together),
                }
            })
            .collect()
    }

    /// Relabels one slice of IUVs and brings their postings in line.
    async fn relabel_slice(
        &mut self,
        slice: &[String],
        place: Place,
        together: &BTreeSet<String>,
        prepared: Prepared,
        out: &mut Relabelled,
    ) -> Result<(), AppError> {
        let Place {
            import_first,
            part_first,
            part_of_document,
            queued,
        } = place;
        let (txn, creditor, after) = (self.txn, self.creditor, &self.after);
        let in_slice: BTreeSet<&str> = slice.iter().map(String::as_str).collect();
        let owns = |subject: &Subject| match subject {
            Subject::Transfer(key) => in_slice.contains(key.iuv.as_str()),
            Subject::Flow(_) => import_first,
            Subject::Credit(id) => {
                let named = credit_iuvs(after, id);
                if named.is_empty() {
                    import_first
                } else if named.len() >= 2 {
                    part_first && named.iter().any(|i| together.contains(i))
                } else {
                    in_slice.contains(named[0].as_str())
                }
            }
        };
        let Prepared {
            notices,
            receipt_refs,
            line_keys: mut stored_keys,
            mut reconciler,
            clearing,
            stored: read_ahead_stored,
        } = prepared;
        if !part_of_document {
            // The document's own lines were posted by its part, earlier in this import.
            stored_keys.extend(self.items.iter().flat_map(|item| {
                match item {
                    EvidenceItem::Flow(flow) => flow
                        .lines
                        .iter()
                        .filter(|l| in_slice.contains(l.key.iuv.as_str()))
                        .map(|l| l.key.clone())
                        .collect(),
                    _ => Vec::new(),
                }
            }));
        }

        // Receipts booked since the last import, against the stored labels.
        let stored = if let Some(stored) = read_ahead_stored {
            stored
        } else if slice.is_empty() {
            BTreeMap::new()
        } else {
            // The queue is taken in IUV order: a slice of it is a run of IUVs, unless it is
            // the first of its part and holds an `/RFB/` credit's IUVs too. (The bounds only
            // steer the plan: every IUV of the slice lies within them either way.)
            let consecutive = queued && (!part_first || together.is_empty());
            labels::stored_of_iuvs(txn, creditor, slice, consecutive).await?
        };
        // A key's stored label as it read before this import (as it reads now, if this import
        // wrote it): composed with its flow's, a plain key's bare row with its line's.
        let bare: BTreeSet<Subject> = stored
            .iter()
            .filter(|(s, l)| {
                matches!(s, Subject::Transfer(_)) && plain::is_bare(&l.assessment, l.composed)
            })
            .map(|(s, _)| s.clone())
            .collect();
        let mut stored =
            composed::compose_keys(stored, &self.stored_flows_and_credits, &self.flows_before);
        plain::compose_read(
            &mut stored,
            &bare,
            reconciler.evidence(),
            &self.flows_before,
            |flow| self.plain.marked_in(reconciler.evidence(), flow),
        );
        stored.extend(
            self.stored_flows_and_credits
                .iter()
                .filter(|(s, _)| owns(s))
                .map(|(s, a)| (s.clone(), a.clone())),
        );
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
        let sliced = self.items.iter().map(|item| match item {
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
        let mut changes: Vec<Relabel> = reconciler
            .apply(sliced)
            .map_err(|e| (self.refuse)(e.to_string()))?
            .into_iter()
            .filter(|c| owns(&c.subject))
            .collect();
        // A subject already stored as the document leaves it (an IUV relabelled in an
        // earlier part of this import) has nothing to record.
        let current: BTreeMap<&Subject, Option<&Assessment>> = changes
            .iter()
            .map(|c| (&c.subject, c.current.as_ref()))
            .collect();
        catch_up.retain(|c| current.get(&c.subject) != Some(&c.previous.as_ref()));
        changes.retain(|c| stored.get(&c.subject) != c.current.as_ref());
        for change in catch_up.iter().chain(&changes) {
            if matches!(change.subject, Subject::Transfer(_)) {
                continue;
            }
            match &change.current {
                Some(a) => self
                    .stored_flows_and_credits
                    .insert(change.subject.clone(), a.clone()),
                None => self.stored_flows_and_credits.remove(&change.subject),
            };
        }
        labels::add_counts(&mut out.counts, &catch_up);
        labels::add_counts(&mut out.counts, &changes);
        if self.plain.unwritten_now {
            // A plain key's row stays bare: its readers compose it with its flow. (Not one
            // the receipts' catch-up has just written.)
            let caught_up: BTreeSet<&Subject> = catch_up.iter().map(|c| &c.subject).collect();
            let evidence = reconciler.evidence();
            changes.retain(|c| {
                let unwritten = !caught_up.contains(&c.subject)
                    && plain::left_unwritten(
                        c,
                        &bare,
                        evidence,
                        &self.stored_flows_and_credits,
                        |flow| self.plain.marked_in(evidence, flow),
                    );
                // Still a change of the key's label, which its history tells (`labels`).
                out.label_changes += usize::from(unwritten && c.is_label_change());
                !unwritten
            });
        }
        out.label_changes += labels::write(txn, creditor, &catch_up, None, self.now).await?;
        out.label_changes +=
            labels::write(txn, creditor, &changes, self.document.clone(), self.now).await?;
        // A key's `reported` target reads its lines, its receipt and the receipt's booking:
        // only new lines or receipts booked since the last import (queued) change it. A
        // statement changes none.
        if self.reporting_changed || queued {
            out.ledger_entries += books::post_reported(
                txn,
                creditor,
                reconciler.evidence(),
                &notices,
                &stored_keys,
                clearing.as_ref(),
                self.now,
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
            self.now,
        )
        .await?;
        Ok(())
    }
}

/// What restating a statement's keys reads alike, page after page.
struct Restate<'a> {
    restating: &'a Restating,
    /// The document's own IUVs, which its part relabelled.
    skip: &'a BTreeSet<String>,
    /// The IUVs `/RFB/` credits name, relabelled with their credits from evidence.
    named_by_credits: &'a BTreeSet<String>,
}

impl<R: Fn(String) -> AppError> Pass<'_, R> {
    /// Restates a page of held flows' keys and writes what changed; the IUVs it cannot
    /// restate are relabelled from their evidence, as a part of held flows.
    async fn restate(
        &mut self,
        restate: &Restate<'_>,
        lines: Vec<restated::LineLabel>,
        first: &mut bool,
        out: &mut Relabelled,
    ) -> Result<(), AppError> {
        let page = restate
            .restating
            .restate(lines, restate.skip, restate.named_by_credits)?;
        if !page.changes.is_empty() {
            // Written in this transaction: a later part reads them there.
            self.parts_before = true;
            out.label_changes += labels::write(
                self.txn,
                self.creditor,
                &page.changes,
                self.document.clone(),
                self.now,
            )
            .await?;
            labels::add_counts(&mut out.counts, &page.changes);
        }
        self.relabel_iuvs(&page.from_evidence, Part::Flows, first, out)
            .await
    }
}

/// Adds `items` (one document's new evidence; none for a catch-up) to `creditor`'s labels and
/// books, relabelling what they and the receipts queued since the last import reach. An item
/// that contradicts the held evidence refuses the whole document (`refuse` makes the error).
///
/// The IUVs come in three parts, each relabelled in slices: the document's own (with the
/// flows and the credits naming no IUV, in the first slice), every IUV of the held flows whose
/// component the document changes (read a page at a time), and the queue (taken a chunk at a
/// time). An IUV in two parts is relabelled twice, the second time changing nothing; no part
/// is ever held whole, so memory is bounded by a slice however many IUVs an import reaches.
pub(crate) async fn relabel(
    txn: &DatabaseTransaction,
    creditor: &str,
    skeleton: &Skeleton,
    items: &[EvidenceItem],
    document: Option<(Uuid, String, String)>,
    refuse: impl Fn(String) -> AppError,
    relabelling: Relabelling,
) -> Result<Relabelled, AppError> {
    begin(
        txn,
        creditor,
        skeleton,
        items,
        document,
        refuse,
        relabelling,
    )
    .await?
    .finish()
    .await
}

/// A relabelling begun ([`begin`]): the document's first slices are being read ahead.
pub(crate) struct Begun<'a, R> {
    pass: Pass<'a, R>,
    skeleton: &'a Skeleton,
    before: Evidence,
    rows: Rows,
    /// The flows whose component the new evidence changes.
    flows: BTreeSet<FlowId>,
    /// The document's own IUVs.
    iuvs: BTreeSet<String>,
    /// The held rows of `flows`.
    held_rows: Vec<Uuid>,
    flows_of_document: Option<Uuid>,
    cashed_pool: Option<DatabaseConnection>,
    /// No slice has been relabelled yet.
    first: bool,
}

/// [`relabel`]'s first step, which an import takes before it stores its document's rows:
/// checks `items` against the held evidence (refusing what contradicts it) and starts reading
/// the committed evidence of the document's first slices ahead, so that those reads overlap
/// the transaction's inserts of the document's lines (a slice's reads take as long as its
/// writes, and a document's first slice had nothing to overlap them). What they read is
/// committed before the import and none of it is what the document adds. On SQLite nothing is
/// read ahead.
pub(crate) async fn begin<'a, R: Fn(String) -> AppError>(
    txn: &'a DatabaseTransaction,
    creditor: &'a str,
    skeleton: &'a Skeleton,
    items: &'a [EvidenceItem],
    document: Option<(Uuid, String, String)>,
    refuse: R,
    relabelling: Relabelling,
) -> Result<Begun<'a, R>, AppError> {
    let Relabelling {
        now,
        iuvs_per_slice,
        pool,
        plain_keys_composed,
    } = relabelling;
    debug_assert!((1..=IUVS_PER_SLICE).contains(&iuvs_per_slice));
    let cashed_pool = pool.clone();
    let before = skeleton_evidence(skeleton)?;
    let rows = rows_of(skeleton);
    let mut after = before.clone();
    for item in items {
        after.add(item.clone()).map_err(|e| refuse(e.to_string()))?;
    }

    // The flows whose component the new evidence changes, before and after it, and the
    // document's own IUVs.
    let mut flows: BTreeSet<FlowId> = BTreeSet::new();
    let mut iuvs: BTreeSet<String> = BTreeSet::new();
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
    // Their lines, in the revision held (which a new one may replace).
    let held_rows: Vec<Uuid> = flows
        .iter()
        .filter_map(|f| latest_row(&rows, &before, f))
        .collect();

    let reporting_changed = items.iter().any(|i| matches!(i, EvidenceItem::Flow(_)));
    let flows_of_document = document.as_ref().map(|d| d.0).filter(|_| reporting_changed);
    let stored_flows_and_credits = labels::stored_flows_and_credits(txn, creditor).await?;
    let mut pass = Pass {
        txn,
        creditor,
        items,
        document,
        refuse,
        now,
        iuvs_per_slice,
        after,
        // A document bringing lines posts `reported` against its receipts' bookings: their
        // clearing accounts are read with the receipts.
        reader: SliceReader::new(
            pool,
            creditor,
            skeleton,
            rows.values().copied().collect(),
            reporting_changed,
        ),
        waiting: VecDeque::new(),
        ahead: VecDeque::new(),
        parts_before: false,
        flows_before: stored_flows_and_credits
            .iter()
            .filter(|(s, _)| matches!(s, Subject::Flow(_)))
            .map(|(s, a)| (s.clone(), a.clone()))
            .collect(),
        stored_flows_and_credits,
        reporting_changed,
        plain: PlainFlows {
            marked: skeleton.plain_rows.clone(),
            rows: rows.clone(),
            unwritten_now: plain_keys_composed,
        },
    };
    let mut first = true;
    let planned = pass.plan(&iuvs, Part::Document, &mut first);
    pass.waiting.extend(planned);
    pass.prime();
    Ok(Begun {
        pass,
        skeleton,
        before,
        rows,
        flows,
        iuvs,
        held_rows,
        flows_of_document,
        cashed_pool,
        first,
    })
}

impl<R: Fn(String) -> AppError> Begun<'_, R> {
    /// Relabels what the import reaches (see [`relabel`]), its document's rows stored.
    pub(crate) async fn finish(self) -> Result<Relabelled, AppError> {
        let Begun {
            mut pass,
            skeleton,
            before,
            rows,
            flows,
            iuvs,
            held_rows,
            flows_of_document,
            cashed_pool,
            mut first,
        } = self;
        let (txn, creditor, items, now) = (pass.txn, pass.creditor, pass.items, pass.now);
        let (iuvs_per_slice, reporting_changed) = (pass.iuvs_per_slice, pass.reporting_changed);
        let mut out = Relabelled::default();
        // The document's own IUVs.
        pass.pump(&mut out).await?;
        // A statement's keys are restated from their flows (`restated`); a flow's keys are
        // relabelled from their evidence after any other document.
        let restating = Restating::of_statement(&before, items).map_err(&pass.refuse)?;
        let named_by_credits: BTreeSet<String> = pass
            .after
            .credits()
            .flat_map(|h| credit_iuvs(&pass.after, &h.credit.id))
            .collect();
        if let Some(restating) = &restating {
            // The keys of a flow whose keys are composed with it read as its new state without
            // being written: only those that cannot be left so are relabelled, from evidence.
            let composed = restated::composed_rows(txn, &held_rows).await?;
            let composed_rows: Vec<Uuid> = composed.iter().copied().collect();
            let relabel: BTreeSet<String> =
                restated::iuvs_not_left_composed(txn, creditor, &composed_rows, &named_by_credits)
                    .await?
                    .into_iter()
                    .filter(|iuv| !iuvs.contains(iuv))
                    .collect();
            pass.relabel_iuvs(&relabel, Part::Flows, &mut first, &mut out)
                .await?;
            // The others' keys (imported by an earlier release) are restated, and written once.
            let held_rows: Vec<Uuid> = held_rows
                .iter()
                .copied()
                .filter(|row| !composed.contains(row))
                .collect();
            let restate = Restate {
                restating,
                skip: &iuvs,
                named_by_credits: &named_by_credits,
            };
            if ConnectionTrait::get_database_backend(txn) == DbBackend::Postgres {
                // The flows' lines merged in key order: a page's keys are neighbours in the label
                // table's indexes.
                for flows in held_rows.chunks(restated::FLOWS_PER_MERGE) {
                    let mut cursor = None;
                    while let Some((lines, last)) =
                        restated::merged_page(txn, creditor, flows, cursor.as_ref(), iuvs_per_slice)
                            .await?
                    {
                        cursor = Some(last);
                        pass.restate(&restate, lines, &mut first, &mut out).await?;
                    }
                }
            } else {
                for row in &held_rows {
                    let mut from = None;
                    while let Some((lines, last)) =
                        restated::page(txn, creditor, *row, from, iuvs_per_slice).await?
                    {
                        from = Some(last);
                        pass.restate(&restate, lines, &mut first, &mut out).await?;
                    }
                }
            }
        }
        for row in held_rows.iter().filter(|_| restating.is_none()) {
            let mut from = None;
            while let Some((page, last)) =
                evidence::iuvs_of_flow_page(txn, *row, from, iuvs_per_slice).await?
            {
                from = Some(last);
                let page: BTreeSet<String> =
                    page.into_iter().filter(|i| !iuvs.contains(i)).collect();
                pass.relabel_iuvs(&page, Part::Flows, &mut first, &mut out)
                    .await?;
            }
        }
        let mut after_iuv: Option<String> = None;
        loop {
            let Some((queued, last)) =
                take_pending(txn, creditor, after_iuv.as_deref(), iuvs_per_slice).await?
            else {
                break;
            };
            after_iuv = Some(last);
            pass.relabel_iuvs(&queued, Part::Queue, &mut first, &mut out)
                .await?;
        }
        pass.finish(&mut out).await?;
        if let Some(document) = flows_of_document {
            // Every key of the document's flows is labelled now, composed with its flow.
            restated::mark_composed(txn, document).await?;
        }
        let Pass { after, refuse, .. } = pass;

        // `cashed`: each changed component with its flows' whole latest lines.
        let mut done: BTreeSet<FlowId> = BTreeSet::new();
        let mut components: Vec<(BTreeSet<CreditId>, Vec<Uuid>)> = Vec::new();
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
            components.push((component.credit_ids, rows));
        }
        // A document's own lines are not committed: its components are read in the transaction.
        let mut reader = cashed_ahead::ComponentReader::start(
            cashed_pool.filter(|_| !reporting_changed),
            creditor,
            components.iter().map(|(_, rows)| rows.clone()).collect(),
        );
        for (credit_ids, rows) in &components {
            let CashedReads { mut lines, notices } = reader.next(txn, rows).await?;
            let mut evidence = Evidence::new();
            for item in skeleton_items(skeleton, &mut lines)
                .into_iter()
                .chain(items.iter().cloned())
            {
                evidence.add(item).map_err(|e| refuse(e.to_string()))?;
            }
            let notices = match notices {
                Some(notices) => notices,
                None => {
                    let iuvs: BTreeSet<String> = evidence
                        .latest_flows()
                        .flat_map(|f| f.lines.iter().map(|l| l.key.iuv.as_str().to_owned()))
                        .collect();
                    books::notices_of(txn, creditor, &iuvs).await?
                }
            };
            out.ledger_entries +=
                books::post_cashed(txn, creditor, &evidence, &notices, credit_ids, now).await?;
        }
        Ok(out)
    }
}
