//! Verification of the chain: every entry's hash recomputed from its recorded bytes and its
//! predecessor's recomputed hash, sequence numbers without gaps, lines that balance, the head
//! pointing at the last entry, and checkpoints an auditor kept outside the system. The deep
//! mode (the default over gRPC and the CLI) also checks that the queryable projection of every
//! entry (its columns, its lines, which balances are summed from, and its notices) says exactly
//! what the recorded bytes say, that the source document it points at still opens and has
//! the hash the entry recorded, and (over the whole chain) that each creditor's reported
//! positions sum to its `reported` entries. Reads in bounded chunks (on PostgreSQL with binary
//! COPY), the next while the current one is checked, so memory stays flat whatever the
//! ledger's size; hashes each chunk in one thread per core, which gives the same answer as one
//! sequential pass because every entry stores its predecessor's hash; stops at the first
//! break.

use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use incasso_domain::ledger::Account;
use incasso_domain::ledger::chain::{
    DecodedEntry, GENESIS_HASH, check_canonical, decode_canonical, entry_hash, hex_lower,
};

use super::reported_positions;
use crate::Store;
use crate::entity::{ledger_entry, ledger_entry_notice, ledger_line, source_document};
use crate::error::AppError;

/// Entries read per chunk: about 6 MB of chain fields.
const CHUNK: i64 = 10_000;

/// A sequence number and the hash the chain had there, kept by an auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence number.
    pub sequence: i64,
    /// SHA-256 of the entry at that sequence.
    pub hash: [u8; 32],
}

impl Checkpoint {
    /// `sequence:hex`, the form auditors keep.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.sequence, hex_lower(&self.hash))
    }

    /// Parses `sequence:hex`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (sequence, hash) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("'{text}' is not a checkpoint (expected SEQUENCE:SHA256HEX)"))?;
        let sequence: i64 = sequence
            .parse()
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| format!("'{sequence}' is not a sequence number"))?;
        let bytes =
            hex::decode(hash).map_err(|_| format!("'{hash}' is not a hexadecimal SHA-256"))?;
        let hash = bytes
            .try_into()
            .map_err(|_| "a SHA-256 has 64 hexadecimal digits".to_owned())?;
        Ok(Self { sequence, hash })
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// True when every check passed.
    pub ok: bool,
    /// Entries whose hash was recomputed.
    pub entries_checked: i64,
    /// The first entry that does not match, when not ok.
    pub first_broken_sequence: Option<i64>,
    /// Why it does not match.
    pub reason: String,
    /// The last sequence verified.
    pub last_sequence: i64,
    /// Its recomputed hash: a new checkpoint to keep.
    pub last_hash: [u8; 32],
}

/// Sequence, previous hash, hash and recorded bytes of an entry.
type ChainRow = (i64, Vec<u8>, Vec<u8>, Vec<u8>);

/// One entry as read for verification: its chain fields, its recorded bytes and, in deep
/// mode, its projection. The bodies share one buffer per chunk when read with COPY; the two
/// hashes are copied out, `None` where the stored value is not 32 bytes long (which no
/// chain hash matches).
struct Recorded {
    sequence: i64,
    previous_hash: Option<[u8; 32]>,
    hash: Option<[u8; 32]>,
    body: Bytes,
    projection: Option<Projection>,
}

/// A stored hash as 32 bytes, if it has that length.
fn digest(stored: &[u8]) -> Option<[u8; 32]> {
    stored.try_into().ok()
}

impl Recorded {
    fn chain_only((sequence, previous_hash, hash, body): ChainRow) -> Self {
        Self {
            sequence,
            previous_hash: digest(&previous_hash),
            hash: digest(&hash),
            body: body.into(),
            projection: None,
        }
    }
}

/// What the queryable tables say about an entry.
struct Projection {
    row: ledger_entry::Model,
    lines: Vec<ProjectedLine>,
    notices: Vec<(String, String)>,
    document: DocumentSeen,
}

/// The source document an entry's row points at, as found in `source_document`.
enum DocumentSeen {
    /// The row points at none.
    None,
    /// The SHA-256 of the document's decrypted content.
    Content([u8; 32]),
    /// The row points at a document that cannot be read: missing, sealed with a key this
    /// deployment does not hold, or a ciphertext that fails its authentication.
    Unreadable,
}

/// A `ledger_line` row: what balances and trial balances are summed and filtered by.
struct ProjectedLine {
    account: String,
    account_type: String,
    creditor_fiscal_code: String,
    kind: Option<String>,
    amount_cents: i64,
}

/// The columns of a `ledger_line` row, with its entry's sequence first.
type LineRow = (i64, String, String, String, Option<String>, i64);

impl Projection {
    /// The first difference between the projection and the recorded entry.
    fn difference(&self, recorded: &DecodedEntry) -> Option<&'static str> {
        let row = &self.row;
        let draft = &recorded.draft;
        let cause = &draft.cause;
        // recorded_micros drives time ranges and trial-balance periods: it must agree too.
        if row.id != recorded.id
            || row.recorded_at != recorded.recorded_at
            || row.recorded_micros != super::writer::micros(recorded.recorded_at)
        {
            return Some("its id or time");
        }
        if row.event_type != draft.event_type.as_str()
            || row.creditor_fiscal_code != draft.creditor.as_str()
            || row.kind.as_deref() != draft.kind.map(|k| k.as_str())
            || row.description != draft.description
        {
            return Some("its event type, creditor, kind or description");
        }
        if row.debt_position_id != cause.debt_position_id
            || row.receipt_id != cause.receipt_id
            || row.reporting_flow_id != cause.reporting_flow_id
            || row.treasury_line_id != cause.treasury_line_id
            || row.reporting_flow_revision.map(i64::from)
                != cause.reporting_flow_revision.map(i64::from)
            || row.posting_key != cause.posting_key
            || row.corrects_sequence != cause.corrects_sequence
            || row.source_document_sha256.as_deref()
                != recorded.source_document_sha256.as_ref().map(|h| &h[..])
        {
            return Some("its cause");
        }
        let lines_match = self.lines.len() == draft.lines.len()
            && self
                .lines
                .iter()
                .zip(&draft.lines)
                .all(|(projected, line)| {
                    projected.amount_cents == line.amount_cents
                        && projected.account == line.account.code()
                        && projected.account_type == line.account.account_type().as_str()
                        && projected.creditor_fiscal_code == line.account.creditor().as_str()
                        && projected.kind.as_deref() == line.account.kind().map(|k| k.as_str())
                });
        if !lines_match {
            return Some("its lines");
        }
        if self.notices != cause.notices {
            return Some("its notices");
        }
        None
    }

    /// Why the document the row points at is not the one the entry recorded, if it is not.
    fn document_problem(&self, recorded: &DecodedEntry) -> Option<&'static str> {
        // The entry recorded the hash of the document behind it: the row must point at a
        // document whose content still has that hash.
        match (&self.document, &recorded.source_document_sha256) {
            (DocumentSeen::None, None) => None,
            (DocumentSeen::Content(seen), Some(recorded)) if seen == recorded => None,
            (DocumentSeen::Unreadable, _) => Some(
                "its source document cannot be opened: it is sealed with a key this deployment \
                 does not hold, or its ciphertext was altered",
            ),
            _ => Some(
                "its source document is not the one it recorded: the projection or the document \
                 was altered",
            ),
        }
    }
}

/// The signature that opens PostgreSQL's binary COPY output.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Reads the chain fields of entries `from..=to` with `COPY ... (FORMAT binary)`: the
/// backend streams rows several times faster than as query results, and the client keeps
/// them in one buffer sliced per field instead of four allocations per row.
async fn read_chain_with_copy(
    pool: &sea_orm::sqlx::PgPool,
    from: i64,
    to: i64,
) -> Result<Vec<Recorded>, AppError> {
    use futures::TryStreamExt;
    use sea_orm::sqlx::postgres::PgPoolCopyExt;
    let unavailable = |e: sea_orm::sqlx::Error| AppError::Unavailable(e.to_string());
    // COPY takes no bind parameters; both bounds are integers.
    let statement = format!(
        "COPY (SELECT sequence, previous_hash, hash, body FROM ledger_entry \
         WHERE sequence BETWEEN {from} AND {to} ORDER BY sequence) TO STDOUT (FORMAT binary)"
    );
    let mut stream = pool.copy_out_raw(&statement).await.map_err(unavailable)?;
    let rows = usize::try_from(to - from + 1).unwrap_or(0);
    let mut buffer = BytesMut::new();
    while let Some(data) = stream.try_next().await.map_err(unavailable)? {
        if buffer.is_empty() {
            // Sized once from the first row (bodies vary little) rather than regrown, and
            // copied, a dozen times per chunk.
            buffer.reserve(rows.saturating_mul(data.len() + 128).min(64 << 20));
        }
        buffer.extend_from_slice(&data);
    }
    parse_chain_copy(buffer.freeze(), rows)
        .map_err(|why| AppError::Internal(format!("reading the ledger with COPY: {why}")))
}

/// Parses binary COPY output of `sequence, previous_hash, hash, body` rows.
fn parse_chain_copy(data: Bytes, rows_expected: usize) -> Result<Vec<Recorded>, &'static str> {
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<std::ops::Range<usize>, &'static str> {
        let end = at.checked_add(n).filter(|end| *end <= data.len());
        let end = end.ok_or("the output ends inside a row")?;
        let range = *at..end;
        *at = end;
        Ok(range)
    };
    let int = |range: std::ops::Range<usize>| -> u32 {
        // Ranges of 2 or 4 bytes, taken just before.
        range
            .map(|i| data[i])
            .fold(0u32, |acc, b| (acc << 8) | u32::from(b))
    };
    if data.get(..COPY_SIGNATURE.len()) != Some(COPY_SIGNATURE) {
        return Err("no COPY signature");
    }
    at += COPY_SIGNATURE.len();
    let _flags = take(&mut at, 4)?;
    let extension = int(take(&mut at, 4)?) as usize;
    take(&mut at, extension)?;
    let mut rows = Vec::with_capacity(rows_expected.min(1 << 16));
    loop {
        let fields = int(take(&mut at, 2)?);
        if fields == 0xFFFF {
            break;
        }
        if fields != 4 {
            return Err("a row without the four chain fields");
        }
        let field = |at: &mut usize| -> Result<std::ops::Range<usize>, &'static str> {
            let length = int(take(at, 4)?);
            if length == u32::MAX {
                return Err("a NULL chain field");
            }
            take(at, length as usize)
        };
        let sequence: [u8; 8] = data[field(&mut at)?]
            .try_into()
            .map_err(|_| "a sequence that is not a bigint")?;
        rows.push(Recorded {
            sequence: i64::from_be_bytes(sequence),
            previous_hash: digest(&data[field(&mut at)?]),
            hash: digest(&data[field(&mut at)?]),
            body: data.slice(field(&mut at)?),
            projection: None,
        });
    }
    Ok(rows)
}

/// Reads entries `from..=to`; with `deep`, their projections too, in concurrent queries.
async fn read_chunk(
    store: Store,
    from: i64,
    to: i64,
    deep: bool,
) -> Result<Vec<Recorded>, AppError> {
    let db = store.db();
    if !deep && db.get_database_backend() == sea_orm::DbBackend::Postgres {
        return read_chain_with_copy(db.get_postgres_connection_pool(), from, to).await;
    }
    if !deep {
        let rows: Vec<ChainRow> = ledger_entry::Entity::find()
            .select_only()
            .columns([
                ledger_entry::Column::Sequence,
                ledger_entry::Column::PreviousHash,
                ledger_entry::Column::Hash,
                ledger_entry::Column::Body,
            ])
            .filter(ledger_entry::Column::Sequence.between(from, to))
            .order_by(ledger_entry::Column::Sequence, Order::Asc)
            .into_tuple()
            .all(db)
            .await?;
        return Ok(rows.into_iter().map(Recorded::chain_only).collect());
    }
    let entries = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::Sequence.between(from, to))
        .order_by(ledger_entry::Column::Sequence, Order::Asc)
        .all(db);
    let lines = ledger_line::Entity::find()
        .select_only()
        .columns([
            ledger_line::Column::EntrySequence,
            ledger_line::Column::Account,
            ledger_line::Column::AccountType,
            ledger_line::Column::CreditorFiscalCode,
            ledger_line::Column::Kind,
            ledger_line::Column::AmountCents,
        ])
        .filter(ledger_line::Column::EntrySequence.between(from, to))
        .order_by(ledger_line::Column::EntrySequence, Order::Asc)
        .order_by(ledger_line::Column::LineIndex, Order::Asc)
        .into_tuple::<LineRow>()
        .all(db);
    let notices = ledger_entry_notice::Entity::find()
        .select_only()
        .columns([
            ledger_entry_notice::Column::EntrySequence,
            ledger_entry_notice::Column::NoticeNumber,
            ledger_entry_notice::Column::Iuv,
        ])
        .filter(ledger_entry_notice::Column::EntrySequence.between(from, to))
        .order_by(ledger_entry_notice::Column::EntrySequence, Order::Asc)
        .order_by(ledger_entry_notice::Column::NoticeIndex, Order::Asc)
        .into_tuple::<(i64, String, String)>()
        .all(db);
    let documents = source_document::Entity::find()
        .filter(
            source_document::Column::Id.in_subquery(
                Query::select()
                    .column(ledger_entry::Column::SourceDocumentId)
                    .from(ledger_entry::Entity)
                    .and_where(ledger_entry::Column::Sequence.between(from, to))
                    .to_owned(),
            ),
        )
        .all(db);
    let (entries, lines, notices, documents) =
        futures::try_join!(entries, lines, notices, documents)?;
    let documents: HashMap<Uuid, source_document::Model> =
        documents.into_iter().map(|d| (d.id, d)).collect();
    let seen = |id: Option<Uuid>| match id {
        None => DocumentSeen::None,
        Some(id) => documents
            .get(&id)
            .and_then(|d| {
                store
                    .keys()
                    .open_bytes(d.id, &d.key_id, &d.nonce, &d.ciphertext)
            })
            .map_or(DocumentSeen::Unreadable, |content| {
                DocumentSeen::Content(Sha256::digest(&content).into())
            }),
    };
    let mut lines = lines.into_iter().peekable();
    let mut notices = notices.into_iter().peekable();
    let mut out = Vec::with_capacity(entries.len());
    for row in entries {
        let sequence = row.sequence;
        // Both lists are ordered by entry: take this entry's run, skip strays of gaps.
        while lines.next_if(|line| line.0 < sequence).is_some() {}
        while notices.next_if(|(s, _, _)| *s < sequence).is_some() {}
        let mut entry_lines = Vec::new();
        while let Some((_, account, account_type, creditor_fiscal_code, kind, amount_cents)) =
            lines.next_if(|line| line.0 == sequence)
        {
            entry_lines.push(ProjectedLine {
                account,
                account_type,
                creditor_fiscal_code,
                kind,
                amount_cents,
            });
        }
        let mut entry_notices = Vec::new();
        while let Some((_, notice, iuv)) = notices.next_if(|(s, _, _)| *s == sequence) {
            entry_notices.push((notice, iuv));
        }
        out.push(Recorded {
            sequence,
            previous_hash: digest(&row.previous_hash),
            hash: digest(&row.hash),
            body: row.body.clone().into(),
            projection: Some(Projection {
                document: seen(row.source_document_id),
                row,
                lines: entry_lines,
                notices: entry_notices,
            }),
        });
    }
    Ok(out)
}

/// Where a run of entries stopped matching: the index of the entry in the run, why, and the
/// hash the chain had just before it.
#[derive(Debug)]
struct Break {
    index: usize,
    reason: String,
    previous: [u8; 32],
}

/// Checks `entries`, which must be sequences `first, first + 1, ...` chained from
/// `previous`, against each other, `checkpoints` and, where read, their projections. Returns
/// the hash of the last entry.
fn check_run(
    entries: &[Recorded],
    first: i64,
    mut previous: [u8; 32],
    checkpoints: &[Checkpoint],
) -> Result<[u8; 32], Break> {
    for (index, recorded) in entries.iter().enumerate() {
        let sequence = first + index as i64;
        let broken = |reason: String| Break {
            index,
            reason,
            previous,
        };
        if recorded.sequence != sequence {
            return Err(broken(format!("entry {sequence} is missing")));
        }
        if recorded.previous_hash != Some(previous) {
            return Err(broken(
                "its previous hash is not the hash of the entry before it".into(),
            ));
        }
        let recomputed = entry_hash(&previous, &recorded.body);
        if recorded.hash != Some(recomputed) {
            return Err(broken(
                "its recorded content does not match its hash: the entry was altered".into(),
            ));
        }
        match check_canonical(&recorded.body) {
            Ok((named, _)) if named != sequence => {
                return Err(broken("its recorded content names another sequence".into()));
            }
            Ok((_, Err(error))) => return Err(broken(format!("invalid entry: {error}"))),
            Ok((_, Ok(()))) => {}
            Err(error) => return Err(broken(format!("unreadable: {error}"))),
        }
        if checkpoints
            .iter()
            .any(|c| c.sequence == sequence && c.hash != recomputed)
        {
            return Err(broken(
                "its hash differs from the checkpoint: the chain was rewritten".into(),
            ));
        }
        if let Some(projection) = &recorded.projection {
            // Only the deep check needs the entry decoded.
            let decoded = decode_canonical(&recorded.body)
                .map_err(|error| broken(format!("unreadable: {error}")))?;
            if let Some(difference) = projection.difference(&decoded) {
                return Err(broken(format!(
                    "{difference} in the queryable tables differ from the recorded entry: \
                     the projection was altered"
                )));
            }
            if let Some(problem) = projection.document_problem(&decoded) {
                return Err(broken(problem.to_owned()));
            }
        }
        previous = recomputed;
    }
    Ok(previous)
}

/// Chunks read ahead of the one being checked.
const READ_AHEAD: usize = 2;

/// Entries below which a chunk is not worth splitting across threads.
const MIN_PART: usize = 512;

/// [`check_run`] over `parts` threads. Part `k` starts from the hash stored in the last entry
/// of part `k - 1`, which is trusted only once part `k - 1` verified: outcomes are taken in
/// order and the first break wins, so the result is exactly that of one sequential pass.
fn check_chunk(
    entries: &[Recorded],
    first: i64,
    previous: [u8; 32],
    checkpoints: &[Checkpoint],
    parts: usize,
    min_part: usize,
) -> Result<[u8; 32], Break> {
    let size = entries.len().div_ceil(parts.max(1)).max(min_part.max(1));
    if size >= entries.len() {
        return check_run(entries, first, previous, checkpoints);
    }
    std::thread::scope(|scope| {
        let rest: Vec<_> = entries
            .chunks(size)
            .enumerate()
            .skip(1)
            .map(|(k, part)| {
                let offset = k * size;
                // A stored hash of the wrong length fails part k - 1 before this is used.
                let start = entries[offset - 1].hash.unwrap_or([0; 32]);
                let handle =
                    scope.spawn(move || check_run(part, first + offset as i64, start, checkpoints));
                (offset, handle)
            })
            .collect();
        let mut last = check_run(&entries[..size], first, previous, checkpoints)?;
        for (offset, handle) in rest {
            let outcome = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            last = outcome.map_err(|b| Break {
                index: b.index + offset,
                ..b
            })?;
        }
        Ok(last)
    })
}

impl Store {
    /// Verifies sequences `from..=to` (default: the whole chain) against each other and
    /// against `checkpoints`; with `deep`, also every entry's queryable projection.
    pub async fn verify_ledger(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        checkpoints: &[Checkpoint],
        deep: bool,
    ) -> Result<VerifyReport, AppError> {
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        self.verify_ledger_in_chunks(from, to, checkpoints, deep, CHUNK, parts, MIN_PART)
            .await
    }

    /// [`Store::verify_ledger`] reading `chunk` entries at a time and checking each chunk in
    /// up to `parts` threads of at least `min_part` entries: tests make all three small to
    /// cross every boundary.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub async fn verify_ledger_in_chunks(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        checkpoints: &[Checkpoint],
        deep: bool,
        chunk: i64,
        parts: usize,
        min_part: usize,
    ) -> Result<VerifyReport, AppError> {
        assert!(chunk >= 1, "chunks hold at least one entry");
        let head = self.ledger_head().await?;
        let start = from.unwrap_or(1).max(1);
        let end = to.unwrap_or(head.sequence);
        if end < start - 1 {
            return Err(AppError::invalid(
                "to_sequence",
                "must not be before from_sequence",
            ));
        }
        if end > head.sequence {
            return Err(AppError::invalid(
                "to_sequence",
                format!("the ledger ends at entry {}", head.sequence),
            ));
        }
        let broken =
            |sequence: i64, checked: i64, reason: String, last: (i64, [u8; 32])| VerifyReport {
                ok: false,
                entries_checked: checked,
                first_broken_sequence: Some(sequence),
                reason,
                last_sequence: last.0,
                last_hash: last.1,
            };
        // The hash the range starts from: genesis, a checkpoint, or the stored hash of the
        // entry before (which a range check trusts; verify from 1 or give a checkpoint to
        // anchor it).
        let mut expected_previous = if start == 1 {
            GENESIS_HASH
        } else if let Some(checkpoint) = checkpoints.iter().find(|c| c.sequence == start - 1) {
            checkpoint.hash
        } else {
            match ledger_entry::Entity::find_by_id(start - 1)
                .one(self.db())
                .await?
            {
                Some(row) => row
                    .hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| AppError::corrupt("ledger hash"))?,
                None => {
                    return Ok(broken(
                        start - 1,
                        0,
                        "the entry before the range is missing".into(),
                        (start - 1, GENESIS_HASH),
                    ));
                }
            }
        };
        for checkpoint in checkpoints {
            if checkpoint.sequence > head.sequence {
                return Ok(broken(
                    head.sequence + 1,
                    0,
                    format!(
                        "checkpoint {} lies beyond the last entry {}: entries were removed",
                        checkpoint.sequence, head.sequence
                    ),
                    (start - 1, expected_previous),
                ));
            }
        }
        let checkpoints: std::sync::Arc<[Checkpoint]> = checkpoints.into();
        let mut checked = 0i64;
        let mut next = start;
        // The next chunks are read while this one is checked, READ_AHEAD at once: each read
        // is one backend streaming on its own core, and hashing keeps the others busy.
        // Every read is its own task and is never aborted: when a break ends the loop or the
        // caller stops waiting (a cancelled gRPC call), reads in flight still finish. A COPY
        // dropped half read sends its connection back to the pool with the rest pending, and
        // the next query on it gets wrong rows.
        let mut reads = std::collections::VecDeque::new();
        let mut read_from = start;
        while next <= end {
            let upto = (next + chunk - 1).min(end);
            while reads.len() <= READ_AHEAD && read_from <= end {
                let last = (read_from + chunk - 1).min(end);
                reads.push_back(tokio::spawn(read_chunk(
                    self.clone(),
                    read_from,
                    last,
                    deep,
                )));
                read_from = last + 1;
            }
            let read = reads
                .pop_front()
                .ok_or_else(|| AppError::Internal("no chunk read queued".into()))?;
            let entries = read
                .await
                .map_err(|e| AppError::Internal(e.to_string()))??;
            let count = entries.len();
            let shared = checkpoints.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                check_chunk(&entries, next, expected_previous, &shared, parts, min_part)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
            match outcome {
                Ok(last) => expected_previous = last,
                Err(b) => {
                    let at = next + b.index as i64;
                    return Ok(broken(
                        at,
                        checked + b.index as i64,
                        b.reason,
                        (at - 1, b.previous),
                    ));
                }
            }
            checked += count as i64;
            next += count as i64;
            if next <= upto {
                return Ok(broken(
                    next,
                    checked,
                    format!("entry {next} is missing"),
                    (next - 1, expected_previous),
                ));
            }
        }
        if end == head.sequence && head.hash != expected_previous {
            return Ok(broken(
                end,
                checked,
                "the chain head does not point at the last entry".into(),
                (end, expected_previous),
            ));
        }
        if end == head.sequence {
            let beyond = ledger_entry::Entity::find()
                .select_only()
                .column(ledger_entry::Column::Sequence)
                .filter(ledger_entry::Column::Sequence.gt(end))
                .into_tuple::<i64>()
                .one(self.db())
                .await?;
            if let Some(extra) = beyond {
                return Ok(broken(
                    extra,
                    checked,
                    "an entry lies beyond the chain head".into(),
                    (end, expected_previous),
                ));
            }
        }
        if deep
            && start == 1
            && end == head.sequence
            && let Some(reason) = self.reported_positions_disagree().await?
        {
            return Ok(VerifyReport {
                ok: false,
                entries_checked: checked,
                first_broken_sequence: None,
                reason,
                last_sequence: end,
                last_hash: expected_previous,
            });
        }
        Ok(VerifyReport {
            ok: true,
            entries_checked: checked,
            first_broken_sequence: None,
            reason: String::new(),
            last_sequence: end,
            last_hash: expected_previous,
        })
    }
}

impl Store {
    /// Whether some creditor's reported positions (what each transfer key has posted, which
    /// the next settlement posts against) do not sum, account by account, to its `reported`
    /// entries: why, if so. Checked when the whole chain is verified deeply.
    async fn reported_positions_disagree(&self) -> Result<Option<String>, AppError> {
        // One snapshot for positions and entries: an import committing between the two reads
        // would otherwise look like a disagreement.
        let snapshot = self.read_snapshot().await?;
        let db = &snapshot;
        let backend = db.get_database_backend();
        let creditors: Vec<String> = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT creditor_fiscal_code FROM ledger_reported_position \
                 UNION SELECT creditor_fiscal_code FROM ledger_entry WHERE event_type = 'reported'",
            ))
            .await?
            .into_iter()
            .map(|row| row.try_get::<String>("", "creditor_fiscal_code"))
            .collect::<Result<_, _>>()?;
        for creditor in creditors {
            let positions = reported_positions::sums(db, &creditor).await?;
            let mut entries = BTreeMap::new();
            // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast back to the integer it is.
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    if backend == DbBackend::Postgres {
                        SUMS_OF_REPORTED.to_owned()
                    } else {
                        SUMS_OF_REPORTED.replace("$1", "?")
                    },
                    [creditor.clone().into()],
                ))
                .await?;
            for row in rows {
                let account: String = row.try_get("", "account")?;
                let account = Account::parse(&account)
                    .map_err(|e| AppError::corrupt(format!("ledger line account: {e}")))?;
                let cents: i64 = row.try_get("", "cents")?;
                if cents != 0 {
                    entries.insert(account, cents);
                }
            }
            if positions != entries {
                let accounts: BTreeSet<&Account> = positions.keys().chain(entries.keys()).collect();
                let differ: Vec<String> = accounts
                    .into_iter()
                    .filter(|a| positions.get(*a) != entries.get(*a))
                    .map(|a| {
                        format!(
                            "{a}: positions {} cents, entries {} cents",
                            positions.get(a).copied().unwrap_or(0),
                            entries.get(a).copied().unwrap_or(0)
                        )
                    })
                    .collect();
                return Ok(Some(format!(
                    "the reported positions of creditor {creditor} do not sum to its reported \
                     entries ({})",
                    differ.join("; ")
                )));
            }
        }
        snapshot.commit().await?;
        Ok(None)
    }
}

/// What one creditor's `reported` entries put in each account.
const SUMS_OF_REPORTED: &str = "SELECT l.account, CAST(SUM(l.amount_cents) AS BIGINT) AS cents \
     FROM ledger_entry e JOIN ledger_line l ON l.entry_sequence = e.sequence \
     WHERE e.creditor_fiscal_code = $1 AND e.event_type = 'reported' GROUP BY l.account";
