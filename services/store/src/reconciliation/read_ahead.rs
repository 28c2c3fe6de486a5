//! Reading a slice ahead: while one slice of an import is relabelled and written in the
//! import's transaction, the next slice's committed evidence is read on a connection of its
//! own and classified on another core.
//!
//! An import used one core at a time: its transaction's connection carried every read and
//! every write, and PostgreSQL and the importer took turns (`perf` over a day of 100,000
//! receipts: one of the two cores idle 47% of the time). What a slice reads falls in two
//! kinds. Its receipts, the held lines of its IUVs and the bookings that cleared its
//! receipts are committed before the import began (the creditor's lock keeps other imports
//! out; a receipt committed meanwhile is queued again and relabelled by the next import), so
//! any connection reads the same rows, and reading them is [`SliceReader::start`]'s job.
//! Its stored labels and postings may have been written by this very import (an IUV
//! reached in two parts), so the transaction reads those when the slice is relabelled,
//! unless the slice's IUVs cannot have been written yet ([`StoredLabels::Ahead`]). SQLite
//! has one connection: there every slice is read in the transaction, in its turn, as
//! before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use incasso_domain::ledger::Account;
use incasso_domain::reconciliation::{EvidenceItem, EvidenceRef, Reconciler, Subject, TransferKey};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

use super::evidence::{self, ReceiptNotices, Skeleton};
use super::{books, labels, plans, scope};
use crate::AppError;

/// How long a read-ahead waits for a free connection before giving up; the slice is then
/// read in the import's transaction (and a statement's cashed flows, `cashed_ahead`, too).
pub(super) const CONNECTION_WAIT: Duration = Duration::from_secs(1);

/// A slice's committed evidence, read and classified.
pub(crate) struct Prepared {
    /// The notice each receipt of the slice paid, by (IUV, receiptId).
    pub notices: ReceiptNotices,
    /// The receipts of each IUV of the slice, as a label change's causes name them.
    pub receipt_refs: BTreeMap<String, BTreeSet<EvidenceRef>>,
    /// The keys of the held lines of the slice's IUVs (stored before this import).
    pub line_keys: BTreeSet<TransferKey>,
    /// The skeleton with the slice's receipts and held lines applied.
    pub reconciler: Reconciler,
    /// The `psp_clearing` account each receipt's booking debited, when the import asked for
    /// it ([`SliceReader::new`]'s `with_clearing`).
    pub clearing: Option<BTreeMap<String, Account>>,
    /// The stored assessments of the slice's transfer keys, when they were read with the
    /// rest ([`StoredLabels::Ahead`]).
    pub stored: Option<BTreeMap<Subject, labels::StoredLabel>>,
}

/// Whether a slice's stored labels are read with its evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredLabels {
    /// Yes: no earlier slice of the import can have written a label of its IUVs (the
    /// document's part comes first and its slices are disjoint; so are the queue's chunks
    /// when no other part came before). `consecutive` as [`labels::stored_of_iuvs`] takes it.
    Ahead {
        /// The slice is a run of the IUVs' order.
        consecutive: bool,
    },
    /// No: the transaction reads them when the slice is relabelled.
    InTransaction,
}

/// What a slice's reads return, before classification.
struct Fetched {
    receipts: Vec<EvidenceItem>,
    notices: ReceiptNotices,
    lines: BTreeMap<Uuid, Vec<incasso_domain::reconciliation::FlowLine>>,
    clearing: Option<BTreeMap<String, Account>>,
    stored: Option<BTreeMap<Subject, labels::StoredLabel>>,
}

/// Reads the slices of one import: ahead, on a pooled connection, when there is a pool.
#[derive(Clone)]
pub(crate) struct SliceReader {
    creditor: Arc<str>,
    skeleton: Arc<Skeleton>,
    held_rows: Arc<BTreeSet<Uuid>>,
    with_clearing: bool,
    pool: Option<DatabaseConnection>,
    /// What the import's slices met, logged when it ends ([`SliceReader::log_at_end`]).
    counts: Arc<ImportCounts>,
}

/// Counted over one import's slices, shared by its read-aheads.
#[derive(Default)]
struct ImportCounts {
    /// Slices whose read-ahead failed: the first is warned of with its cause, the rest in one
    /// warning when the import ends, not once per slice (a starved pool fails every slice of a
    /// big import).
    fallbacks: AtomicUsize,
    /// Slices read ahead.
    read_ahead: AtomicUsize,
    /// How long the transaction waited for them in all (µs): where the reads ahead are slower
    /// than the writes they overlap, the import is bound by them.
    waited_micros: AtomicU64,
}

/// How a slice is being read.
pub(crate) enum Reading {
    /// On its own connection, started before the slice before it was relabelled.
    Ahead(ReadAhead),
    /// In the import's transaction, once its turn comes.
    InTransaction,
}

/// A read-ahead's task, stopped when the import gives up before using it.
pub(crate) struct ReadAhead(JoinHandle<Result<Prepared, AppError>>);

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SliceReader {
    /// A reader of `creditor`'s slices over the held evidence `skeleton`, whose flow
    /// revisions are the rows `held_rows`. `pool` reads slices ahead (PostgreSQL only: SQLite's
    /// one connection is the transaction's); `with_clearing` also reads the clearing account
    /// of each receipt's booking, which a document bringing flow lines posts against.
    pub(crate) fn new(
        pool: Option<DatabaseConnection>,
        creditor: &str,
        skeleton: &Skeleton,
        held_rows: BTreeSet<Uuid>,
        with_clearing: bool,
    ) -> Self {
        Self {
            creditor: Arc::from(creditor),
            skeleton: Arc::new(skeleton.clone()),
            held_rows: Arc::new(held_rows),
            with_clearing,
            pool,
            counts: Arc::default(),
        }
    }

    /// Warns, once for the whole import, of the slices read in the transaction after the
    /// first because their read-ahead failed; says at debug level how long the transaction
    /// waited for the slices read ahead.
    pub(crate) fn log_at_end(&self) {
        let slices = self.counts.read_ahead.load(Ordering::Relaxed);
        if slices > 0 {
            let waited_ms = self.counts.waited_micros.load(Ordering::Relaxed) / 1000;
            tracing::debug!(
                creditor = %self.creditor,
                slices,
                waited_ms,
                "the import's transaction waited {waited_ms} ms in all for {slices} slices read \
                 ahead"
            );
        }
        let fallbacks = self.counts.fallbacks.load(Ordering::Relaxed);
        if fallbacks > 1 {
            tracing::warn!(
                creditor = %self.creditor,
                slices = fallbacks,
                "reading ahead failed for {fallbacks} slices of this import; each was read in \
                 the import's transaction (the first failure's cause was logged)"
            );
        }
    }

    /// Whether this is the import's first failed read-ahead, which is warned of with its
    /// cause.
    fn first_fallback(&self) -> bool {
        self.counts.fallbacks.fetch_add(1, Ordering::Relaxed) == 0
    }

    /// Starts reading `slice` ahead when there is a pool to read it from, its stored labels
    /// too when `stored` says so.
    pub(crate) fn start(&self, slice: &[String], stored: StoredLabels) -> Reading {
        let Some(pool) = self.pool.clone() else {
            return Reading::InTransaction;
        };
        if slice.is_empty() {
            return Reading::InTransaction;
        }
        let reader = self.clone();
        let slice = slice.to_vec();
        let task = async move {
            let txn = tokio::time::timeout(CONNECTION_WAIT, pool.begin())
                .await
                .map_err(|_| {
                    AppError::Unavailable(format!(
                        "no database connection free within {} ms to read a slice ahead",
                        CONNECTION_WAIT.as_millis()
                    ))
                })??;
            // Planned for their parameters, as in the import's transaction (`plans`).
            plans::reads_planned_afresh(&txn).await?;
            let fetched = reader.fetch(&txn, &slice, stored).await?;
            txn.commit().await?;
            reader.prepare(fetched)
        };
        Reading::Ahead(ReadAhead(tokio::spawn(
            task.instrument(tracing::Span::current()),
        )))
    }

    /// `slice`'s evidence: as read ahead, or read now in `txn` when it was not or its
    /// read-ahead failed (a failure that is the data's fails again here, and is returned).
    /// Read now, its stored labels are left to the caller.
    pub(crate) async fn prepared(
        &self,
        txn: &impl ConnectionTrait,
        slice: &[String],
        reading: Reading,
    ) -> Result<Prepared, AppError> {
        if let Reading::Ahead(mut ahead) = reading {
            let waiting = Instant::now();
            let outcome = (&mut ahead.0).await;
            self.counts.read_ahead.fetch_add(1, Ordering::Relaxed);
            self.counts.waited_micros.fetch_add(
                u64::try_from(waiting.elapsed().as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let error = match outcome {
                Ok(Ok(prepared)) => return Ok(prepared),
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            if self.first_fallback() {
                tracing::warn!(
                    creditor = %self.creditor,
                    %error,
                    "reading a slice ahead failed; it is read in the import's transaction"
                );
            } else {
                tracing::debug!(
                    creditor = %self.creditor,
                    %error,
                    "reading a slice ahead failed; it is read in the import's transaction"
                );
            }
        }
        let fetched = self.fetch(txn, slice, StoredLabels::InTransaction).await?;
        self.prepare(fetched)
    }

    async fn fetch(
        &self,
        db: &impl ConnectionTrait,
        slice: &[String],
        stored: StoredLabels,
    ) -> Result<Fetched, AppError> {
        if slice.is_empty() {
            return Ok(Fetched {
                receipts: Vec::new(),
                notices: ReceiptNotices::new(),
                lines: BTreeMap::new(),
                clearing: self.with_clearing.then(BTreeMap::new),
                stored: None,
            });
        }
        let (receipts, notices) = evidence::receipts_of_iuvs(db, &self.creditor, slice).await?;
        let lines = evidence::lines_of_iuvs(db, &self.held_rows, slice).await?;
        let clearing = if self.with_clearing {
            let receipt_ids: BTreeSet<&String> = notices.keys().map(|(_, id)| id).collect();
            let receipt_ids: Vec<String> = receipt_ids.into_iter().cloned().collect();
            Some(books::clearing_of_receipts(db, &self.creditor, &receipt_ids).await?)
        } else {
            None
        };
        let stored = match stored {
            StoredLabels::Ahead { consecutive } => {
                Some(labels::stored_of_iuvs(db, &self.creditor, slice, consecutive).await?)
            }
            StoredLabels::InTransaction => None,
        };
        Ok(Fetched {
            receipts,
            notices,
            lines,
            clearing,
            stored,
        })
    }

    fn prepare(&self, fetched: Fetched) -> Result<Prepared, AppError> {
        let Fetched {
            receipts,
            notices,
            mut lines,
            clearing,
            stored,
        } = fetched;
        let line_keys: BTreeSet<TransferKey> =
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
        held.extend(scope::skeleton_items(&self.skeleton, &mut lines));
        let mut reconciler = Reconciler::new();
        reconciler
            .apply(held)
            .map_err(|e| AppError::Internal(format!("stored evidence contradicts itself: {e}")))?;
        Ok(Prepared {
            notices,
            receipt_refs,
            line_keys,
            reconciler,
            clearing,
            stored,
        })
    }
}
