//! Verification of the chain: every entry's hash recomputed from its recorded bytes and its
//! predecessor's recomputed hash, sequence numbers without gaps, lines that balance, the head
//! pointing at the last entry, and checkpoints an auditor kept outside the system. The deep
//! mode (the default over gRPC and the CLI) also checks that the queryable projection of every
//! entry (its columns, its lines, which balances are summed from, and its notices) says exactly
//! what the recorded bytes say. Reads in bounded chunks, the next while the current one is
//! checked, so memory stays flat whatever the ledger's size; stops at the first break.

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
};

use incasso_domain::ledger::chain::{
    DecodedEntry, GENESIS_HASH, check_canonical, decode_canonical, entry_hash, hex_lower,
};

use crate::Store;
use crate::entity::{ledger_entry, ledger_entry_notice, ledger_line};
use crate::error::AppError;

/// Entries read per chunk.
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
/// mode, its projection.
struct Recorded {
    sequence: i64,
    previous_hash: Vec<u8>,
    hash: Vec<u8>,
    body: Vec<u8>,
    projection: Option<Projection>,
}

/// What the queryable tables say about an entry.
struct Projection {
    row: ledger_entry::Model,
    lines: Vec<ProjectedLine>,
    notices: Vec<(String, String)>,
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
}

/// Reads entries `from..=to`; with `deep`, their projections too, in concurrent queries.
async fn read_chunk(
    db: DatabaseConnection,
    from: i64,
    to: i64,
    deep: bool,
) -> Result<Vec<Recorded>, AppError> {
    if !deep && db.get_database_backend() == sea_orm::DbBackend::Postgres {
        // The chain check reads four columns of millions of rows: straight through sqlx,
        // which is several times cheaper per row than going through sea-orm's dynamic rows.
        let rows: Vec<ChainRow> = sea_orm::sqlx::query_as(
            "SELECT sequence, previous_hash, hash, body FROM ledger_entry \
             WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence",
        )
        .bind(from)
        .bind(to)
        .fetch_all(db.get_postgres_connection_pool())
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
        return Ok(rows
            .into_iter()
            .map(|(sequence, previous_hash, hash, body)| Recorded {
                sequence,
                previous_hash,
                hash,
                body,
                projection: None,
            })
            .collect());
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
            .all(&db)
            .await?;
        return Ok(rows
            .into_iter()
            .map(|(sequence, previous_hash, hash, body)| Recorded {
                sequence,
                previous_hash,
                hash,
                body,
                projection: None,
            })
            .collect());
    }
    let entries = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::Sequence.between(from, to))
        .order_by(ledger_entry::Column::Sequence, Order::Asc)
        .all(&db);
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
        .all(&db);
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
        .all(&db);
    let (entries, lines, notices) = futures::try_join!(entries, lines, notices)?;
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
            previous_hash: row.previous_hash.clone(),
            hash: row.hash.clone(),
            body: row.body.clone(),
            projection: Some(Projection {
                row,
                lines: entry_lines,
                notices: entry_notices,
            }),
        });
    }
    Ok(out)
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
        let mut checked = 0i64;
        let mut next = start;
        let mut prefetch: Option<tokio::task::JoinHandle<Result<Vec<Recorded>, AppError>>> = None;
        while next <= end {
            let upto = (next + CHUNK - 1).min(end);
            // The next chunk is read while this one is checked: the database and the hashing
            // each keep one core busy.
            let entries = match prefetch.take() {
                Some(task) => task.await.map_err(|e| AppError::Internal(e.to_string()))?,
                None => read_chunk(self.db().clone(), next, upto, deep).await,
            };
            let following = upto + 1;
            if following <= end {
                let last = (following + CHUNK - 1).min(end);
                prefetch = Some(tokio::spawn(read_chunk(
                    self.db().clone(),
                    following,
                    last,
                    deep,
                )));
            }
            let entries = entries?;
            for recorded in &entries {
                let last = (next - 1, expected_previous);
                if recorded.sequence != next {
                    return Ok(broken(
                        next,
                        checked,
                        format!("entry {next} is missing"),
                        last,
                    ));
                }
                if recorded.previous_hash != expected_previous {
                    return Ok(broken(
                        next,
                        checked,
                        "its previous hash is not the hash of the entry before it".into(),
                        last,
                    ));
                }
                let recomputed = entry_hash(&expected_previous, &recorded.body);
                if recorded.hash != recomputed {
                    return Ok(broken(
                        next,
                        checked,
                        "its recorded content does not match its hash: the entry was altered"
                            .into(),
                        last,
                    ));
                }
                match check_canonical(&recorded.body) {
                    Ok((sequence, _)) if sequence != next => {
                        return Ok(broken(
                            next,
                            checked,
                            "its recorded content names another sequence".into(),
                            last,
                        ));
                    }
                    Ok((_, Err(error))) => {
                        return Ok(broken(
                            next,
                            checked,
                            format!("invalid entry: {error}"),
                            last,
                        ));
                    }
                    Ok((_, Ok(()))) => {}
                    Err(error) => {
                        return Ok(broken(next, checked, format!("unreadable: {error}"), last));
                    }
                }
                if let Some(checkpoint) = checkpoints.iter().find(|c| c.sequence == next)
                    && checkpoint.hash != recomputed
                {
                    return Ok(broken(
                        next,
                        checked,
                        "its hash differs from the checkpoint: the chain was rewritten".into(),
                        last,
                    ));
                }
                let difference = match &recorded.projection {
                    // Only the deep check needs the entry decoded.
                    Some(projection) => match decode_canonical(&recorded.body) {
                        Ok(decoded) => projection.difference(&decoded),
                        Err(error) => {
                            return Ok(broken(next, checked, format!("unreadable: {error}"), last));
                        }
                    },
                    None => None,
                };
                if let Some(difference) = difference {
                    return Ok(broken(
                        next,
                        checked,
                        format!(
                            "{difference} in the queryable tables differ from the recorded entry: \
                             the projection was altered"
                        ),
                        last,
                    ));
                }
                expected_previous = recomputed;
                checked += 1;
                next += 1;
            }
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
