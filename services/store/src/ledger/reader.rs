//! The read side of the ledger: entries by filter with stable page tokens, one entry with its
//! source document, balances as of an instant, trial balance of a period, and chunks for
//! export. Everything is ordered by sequence number; since the chain only grows at its end and
//! `recorded_at` never goes backwards, a page token is simply "after sequence n" and a time
//! range is a sequence range.

use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, Order, QueryFilter,
    QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use incasso_domain::creditor::CreditorRegistry;
use incasso_domain::debt_position::DebtKind;
use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::ledger::chain::{ChainedEntry, decode_canonical};
use incasso_domain::ledger::{Account, AccountType, EventType, RECEIPT_ID_MAX_CHARS};
use incasso_domain::notice_number::{Iuv, NoticeNumber};
use incasso_domain::reconciliation::{CreditId, FlowId};
use incasso_domain::rome_time::start_of_rome_day;
use incasso_domain::validation::{ValidationErrors, parse_date};

use super::{SourceDocument, StoredEntry};
use crate::Store;
use crate::entity::{ledger_entry, ledger_entry_notice, ledger_head, ledger_line, source_document};
use crate::error::AppError;

const DEFAULT_PAGE_SIZE: u64 = 100;
const MAX_PAGE_SIZE: u64 = 1000;

/// The filters of an entry query, as sent; empty strings mean "any".
#[derive(Debug, Clone, Default)]
pub struct EntryFilterInput {
    /// Recorded at or after.
    pub from: Option<OffsetDateTime>,
    /// Recorded before.
    pub to: Option<OffsetDateTime>,
    /// An account code.
    pub account: String,
    /// Whose books.
    pub creditor_fiscal_code: String,
    /// The kind of debt.
    pub kind: Option<DebtKind>,
    /// An event type name.
    pub event_type: String,
    /// A notice number.
    pub notice_number: String,
    /// An IUV.
    pub iuv: String,
    /// A debt position id.
    pub debt_position_id: String,
    /// PagoPA's receiptId.
    pub receipt_id: String,
    /// A PSP's reporting flow (IUF): the `reported` and `cashed` entries naming it.
    pub reporting_flow_id: String,
    /// A treasury credit's id: the `cashed` entries of that credit.
    pub treasury_credit_id: String,
}

/// A parsed filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct EntryFilter {
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    account: Option<Account>,
    creditor: Option<OrganizationFiscalCode>,
    kind: Option<DebtKind>,
    event_type: Option<EventType>,
    notice_number: Option<NoticeNumber>,
    iuv: Option<Iuv>,
    debt_position_id: Option<Uuid>,
    receipt_id: Option<String>,
    reporting_flow_id: Option<FlowId>,
    treasury_credit_id: Option<CreditId>,
}

impl EntryFilterInput {
    /// Parses every filter, naming each bad one.
    pub(crate) fn parse(
        &self,
        registry: &CreditorRegistry,
        errors: &mut ValidationErrors,
    ) -> EntryFilter {
        fn optional(value: &str) -> Option<&str> {
            let value = value.trim();
            (!value.is_empty()).then_some(value)
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to < from
        {
            errors.add("to", "must not be before from");
        }
        EntryFilter {
            from: self.from,
            to: self.to,
            account: optional(&self.account).and_then(|a| {
                let account = errors.check("account", Account::parse(a))?;
                errors.check("account", keeps_books(registry, account.creditor()))?;
                Some(account)
            }),
            creditor: books_creditor(registry, &self.creditor_fiscal_code, errors),
            kind: self.kind,
            event_type: optional(&self.event_type).and_then(|e| {
                let parsed = EventType::from_name(e);
                if parsed.is_none() {
                    let names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                    errors.add(
                        "event_type",
                        format!("unknown event type '{e}' (one of {})", names.join(", ")),
                    );
                }
                parsed
            }),
            notice_number: optional(&self.notice_number)
                .and_then(|n| errors.check("notice_number", NoticeNumber::parse(n))),
            iuv: optional(&self.iuv).and_then(|i| errors.check("iuv", Iuv::parse(i))),
            debt_position_id: optional(&self.debt_position_id).and_then(|id| {
                errors.check(
                    "debt_position_id",
                    Uuid::parse_str(id)
                        .map_err(|_| format!("'{id}' is not a debt position id (UUID)")),
                )
            }),
            receipt_id: optional(&self.receipt_id).and_then(|id| {
                let length = id.chars().count();
                if length > RECEIPT_ID_MAX_CHARS {
                    errors.add(
                        "receipt_id",
                        format!(
                            "{length} characters: no receipt is accepted with more than \
                             {RECEIPT_ID_MAX_CHARS}"
                        ),
                    );
                    return None;
                }
                Some(id.to_owned())
            }),
            reporting_flow_id: optional(&self.reporting_flow_id)
                .and_then(|id| errors.check("reporting_flow_id", FlowId::parse(id))),
            treasury_credit_id: optional(&self.treasury_credit_id)
                .and_then(|id| errors.check("treasury_credit_id", CreditId::parse(id))),
        }
    }
}

/// `Ok` when incasso keeps books for `creditor`: an account or filter naming anyone else is
/// a mistake, and answering it with empty results would hide the mistake.
fn keeps_books(
    registry: &CreditorRegistry,
    creditor: &OrganizationFiscalCode,
) -> Result<(), String> {
    match registry.get(creditor.as_str()) {
        Some(_) => Ok(()),
        None => {
            let known: Vec<_> = registry.iter().map(|c| c.fiscal_code().as_str()).collect();
            Err(format!(
                "incasso keeps no books for creditor {creditor} (it keeps books for {})",
                known.join(", ")
            ))
        }
    }
}

/// An optional `creditor_fiscal_code` filter: empty for every creditor, else one whose books
/// incasso keeps.
fn books_creditor(
    registry: &CreditorRegistry,
    text: &str,
    errors: &mut ValidationErrors,
) -> Option<OrganizationFiscalCode> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let creditor = errors.check("creditor_fiscal_code", OrganizationFiscalCode::parse(text))?;
    errors.check("creditor_fiscal_code", keeps_books(registry, &creditor))?;
    Some(creditor)
}

impl EntryFilter {
    /// True when the recorded entry satisfies every filter.
    fn matches(&self, entry: &ChainedEntry) -> bool {
        let draft = &entry.draft;
        self.from.is_none_or(|from| entry.recorded_at >= from)
            && self.to.is_none_or(|to| entry.recorded_at < to)
            && self.creditor.as_ref().is_none_or(|c| &draft.creditor == c)
            && self.kind.is_none_or(|k| draft.kind == Some(k))
            && self.event_type.is_none_or(|t| draft.event_type == t)
            && self
                .debt_position_id
                .is_none_or(|id| draft.cause.debt_position_id == Some(id))
            && self
                .receipt_id
                .as_ref()
                .is_none_or(|id| draft.cause.receipt_id.as_ref() == Some(id))
            && self
                .reporting_flow_id
                .as_ref()
                .is_none_or(|id| draft.cause.reporting_flow_id.as_deref() == Some(id.as_str()))
            && self
                .treasury_credit_id
                .as_ref()
                .is_none_or(|id| draft.cause.treasury_line_id.as_deref() == Some(id.as_str()))
            && self
                .account
                .as_ref()
                .is_none_or(|a| draft.lines.iter().any(|l| &l.account == a))
            && self
                .notice_number
                .as_ref()
                .is_none_or(|n| draft.cause.notices.iter().any(|(nav, _)| nav == n.as_str()))
            && self
                .iuv
                .as_ref()
                .is_none_or(|i| draft.cause.notices.iter().any(|(_, iuv)| iuv == i.as_str()))
    }

    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        let parts = [
            self.from.map(|t| t.unix_timestamp_nanos().to_string()),
            self.to.map(|t| t.unix_timestamp_nanos().to_string()),
            self.account.as_ref().map(Account::code),
            self.creditor.as_ref().map(|c| c.as_str().to_owned()),
            self.kind.map(|k| k.as_str().to_owned()),
            self.event_type.map(|e| e.as_str().to_owned()),
            self.notice_number.as_ref().map(|n| n.as_str().to_owned()),
            self.iuv.as_ref().map(|i| i.as_str().to_owned()),
            self.debt_position_id.map(|id| id.to_string()),
        ];
        for part in parts {
            hasher.update(part.unwrap_or_default().as_bytes());
            hasher.update(b"\0");
        }
        // Added after the others, and only when set, so that tokens issued for the other
        // filters before it existed stay valid.
        if let Some(receipt_id) = &self.receipt_id {
            hasher.update(b"receipt_id\0");
            hasher.update(receipt_id.as_bytes());
        }
        if let Some(flow) = &self.reporting_flow_id {
            hasher.update(b"reporting_flow_id\0");
            hasher.update(flow.as_str().as_bytes());
        }
        if let Some(credit) = &self.treasury_credit_id {
            hasher.update(b"treasury_credit_id\0");
            hasher.update(credit.as_str().as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    }
}

/// One page of entries.
#[derive(Debug, Clone)]
pub struct EntryPage {
    /// Entries in sequence order.
    pub entries: Vec<StoredEntry>,
    /// Token of the next page; empty at the end.
    pub next_page_token: String,
}

/// The balance of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    /// The account code.
    pub account: String,
    /// Debits minus credits, cents.
    pub balance_cents: i64,
}

/// One row of a trial balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalanceRow {
    /// The account code.
    pub account: String,
    /// Debits in the period, cents.
    pub debit_cents: i64,
    /// Credits in the period, cents (positive).
    pub credit_cents: i64,
}

#[derive(Debug, FromQueryResult)]
struct SequenceRow {
    sequence: Option<i64>,
}

fn corrupt(sequence: i64, what: &str) -> AppError {
    AppError::corrupt(format!("ledger entry {sequence}: {what}"))
}

fn hash32(sequence: i64, bytes: &[u8]) -> Result<[u8; 32], AppError> {
    bytes
        .try_into()
        .map_err(|_| corrupt(sequence, "hash is not 32 bytes"))
}

/// An entry as recorded: decoded from the exact bytes its hash covers, never from the
/// queryable projection beside it, so what is served is what verification checks.
pub(crate) fn entry_from_row(row: ledger_entry::Model) -> Result<StoredEntry, AppError> {
    let sequence = row.sequence;
    let decoded = decode_canonical(&row.body).map_err(|e| corrupt(sequence, &e.to_string()))?;
    if decoded.sequence != sequence || decoded.id != row.id {
        return Err(corrupt(
            sequence,
            "the recorded body belongs to another entry",
        ));
    }
    Ok(StoredEntry {
        entry: ChainedEntry {
            sequence,
            id: decoded.id,
            recorded_at: decoded.recorded_at,
            source_document_sha256: decoded.source_document_sha256,
            draft: decoded.draft,
            previous_hash: hash32(sequence, &row.previous_hash)?,
            hash: hash32(sequence, &row.hash)?,
        },
        source_document_id: row.source_document_id,
    })
}

impl Store {
    /// The chain head: the last sequence number and its hash.
    pub async fn ledger_head(&self) -> Result<super::Checkpoint, AppError> {
        let head = ledger_head::Entity::find_by_id(1i16)
            .one(self.db())
            .await?
            .ok_or_else(|| AppError::corrupt("the ledger head row is missing"))?;
        Ok(super::Checkpoint {
            sequence: head.last_sequence,
            hash: hash32(head.last_sequence, &head.last_hash)?,
        })
    }

    /// The last sequence recorded at or before `instant` (0 if none).
    async fn last_sequence_at(&self, instant: OffsetDateTime) -> Result<i64, AppError> {
        // recorded_at never goes backwards along the chain, so the last entry by time is the
        // last by sequence: one step down the (recorded_at, sequence) index.
        let row = ledger_entry::Entity::find()
            .select_only()
            .column(ledger_entry::Column::Sequence)
            .filter(ledger_entry::Column::RecordedMicros.lte(super::writer::micros(instant)))
            .order_by(ledger_entry::Column::RecordedMicros, Order::Desc)
            .order_by(ledger_entry::Column::Sequence, Order::Desc)
            .limit(1)
            .into_model::<SequenceRow>()
            .one(self.db())
            .await?;
        Ok(row.and_then(|r| r.sequence).unwrap_or(0))
    }

    /// The sequence range `(after, upto]` a time range covers.
    async fn sequence_range(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<(i64, i64), AppError> {
        // Two independent index steps: looked up at once, on two pooled connections.
        let after = async {
            match from {
                Some(from) => self.last_sequence_at(from - Duration::nanoseconds(1)).await,
                None => Ok(0),
            }
        };
        let upto = async {
            match to {
                Some(to) => self.last_sequence_at(to - Duration::nanoseconds(1)).await,
                None => Ok(i64::MAX),
            }
        };
        futures::try_join!(after, upto)
    }

    /// Entries matching `filter` with sequence in `(after, upto]`, at most `limit`, in order.
    pub(crate) async fn entries_after(
        &self,
        filter: &EntryFilter,
        after: i64,
        upto: i64,
        limit: u64,
    ) -> Result<Vec<StoredEntry>, AppError> {
        let mut condition = Condition::all()
            .add(ledger_entry::Column::Sequence.gt(after))
            .add(ledger_entry::Column::Sequence.lte(upto));
        if let Some(creditor) = &filter.creditor {
            condition =
                condition.add(ledger_entry::Column::CreditorFiscalCode.eq(creditor.as_str()));
        }
        if let Some(kind) = filter.kind {
            condition = condition.add(ledger_entry::Column::Kind.eq(kind.as_str()));
        }
        if let Some(event_type) = filter.event_type {
            condition = condition.add(ledger_entry::Column::EventType.eq(event_type.as_str()));
        }
        if let Some(id) = filter.debt_position_id {
            condition = condition.add(ledger_entry::Column::DebtPositionId.eq(id));
        }
        if let Some(receipt_id) = &filter.receipt_id {
            condition = condition.add(ledger_entry::Column::ReceiptId.eq(receipt_id.as_str()));
        }
        // Both indexed with the sequence (migration 20): one flow's or one credit's entries
        // are read in order without scanning the rest of the chain.
        if let Some(flow) = &filter.reporting_flow_id {
            condition = condition.add(ledger_entry::Column::ReportingFlowId.eq(flow.as_str()));
        }
        if let Some(credit) = &filter.treasury_credit_id {
            condition = condition.add(ledger_entry::Column::TreasuryLineId.eq(credit.as_str()));
        }
        // The most selective index drives: a notice, then an account; the other filters are
        // checked on the candidates, which are read in order in bounded batches.
        let driver = if let Some(notice) = &filter.notice_number {
            Some((
                ledger_entry_notice::Column::NoticeNumber.eq(notice.as_str()),
                "notice",
            ))
        } else if let Some(iuv) = &filter.iuv {
            Some((ledger_entry_notice::Column::Iuv.eq(iuv.as_str()), "notice"))
        } else {
            filter
                .account
                .as_ref()
                .map(|a| (ledger_line::Column::Account.eq(a.code()), "line"))
        };
        if filter.account.is_some() && driver.as_ref().is_some_and(|(_, table)| *table == "notice")
        {
            let account = filter
                .account
                .as_ref()
                .map(Account::code)
                .unwrap_or_default();
            condition = condition.add(
                ledger_entry::Column::Sequence.in_subquery(
                    Query::select()
                        .column(ledger_line::Column::EntrySequence)
                        .from(ledger_line::Entity)
                        .and_where(ledger_line::Column::Account.eq(account))
                        .to_owned(),
                ),
            );
        }
        let Some((driver, table)) = driver else {
            let rows = ledger_entry::Entity::find()
                .filter(condition)
                .order_by(ledger_entry::Column::Sequence, Order::Asc)
                .limit(limit)
                .all(self.db())
                .await?;
            let entries = self.complete(rows).await?;
            return Ok(entries
                .into_iter()
                .filter(|e| filter.matches(&e.entry))
                .collect());
        };
        let batch = limit.clamp(100, 5000);
        let mut cursor = after;
        let mut rows = Vec::new();
        loop {
            let candidates: Vec<i64> = if table == "notice" {
                ledger_entry_notice::Entity::find()
                    .select_only()
                    .column(ledger_entry_notice::Column::EntrySequence)
                    .filter(driver.clone())
                    .filter(ledger_entry_notice::Column::EntrySequence.gt(cursor))
                    .filter(ledger_entry_notice::Column::EntrySequence.lte(upto))
                    .order_by(ledger_entry_notice::Column::EntrySequence, Order::Asc)
                    .limit(batch)
                    .into_tuple()
                    .all(self.db())
                    .await?
            } else {
                ledger_line::Entity::find()
                    .select_only()
                    .column(ledger_line::Column::EntrySequence)
                    .filter(driver.clone())
                    .filter(ledger_line::Column::EntrySequence.gt(cursor))
                    .filter(ledger_line::Column::EntrySequence.lte(upto))
                    .order_by(ledger_line::Column::EntrySequence, Order::Asc)
                    .limit(batch)
                    .into_tuple()
                    .all(self.db())
                    .await?
            };
            let Some(&last) = candidates.last() else {
                break;
            };
            let found = ledger_entry::Entity::find()
                .filter(condition.clone())
                .filter(ledger_entry::Column::Sequence.is_in(candidates.iter().copied()))
                .order_by(ledger_entry::Column::Sequence, Order::Asc)
                .all(self.db())
                .await?;
            for row in found {
                if rows
                    .last()
                    .is_none_or(|r: &ledger_entry::Model| r.sequence != row.sequence)
                {
                    rows.push(row);
                }
            }
            cursor = last;
            if rows.len() as u64 >= limit || (candidates.len() as u64) < batch {
                break;
            }
        }
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let entries = self.complete(rows).await?;
        // The indexes only propose candidates; the recorded entries decide, so an altered
        // index can hide an entry from a query but never make it show something else.
        Ok(entries
            .into_iter()
            .filter(|e| filter.matches(&e.entry))
            .collect())
    }

    /// Decodes `rows` from their recorded bodies.
    async fn complete(&self, rows: Vec<ledger_entry::Model>) -> Result<Vec<StoredEntry>, AppError> {
        rows.into_iter().map(entry_from_row).collect()
    }

    /// One page of entries, oldest first.
    pub async fn list_ledger_entries(
        &self,
        input: &EntryFilterInput,
        page_size: i32,
        page_token: &str,
    ) -> Result<EntryPage, AppError> {
        let mut errors = ValidationErrors::new();
        let filter = input.parse(self.registry(), &mut errors);
        let page_size = match u64::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) if size <= MAX_PAGE_SIZE => size,
            _ => {
                errors.add(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                );
                DEFAULT_PAGE_SIZE
            }
        };
        let fingerprint = filter.fingerprint();
        let after_token = if page_token.is_empty() {
            None
        } else {
            match page_token.split_once('.') {
                Some((sequence, print)) if print == fingerprint => match sequence.parse::<i64>() {
                    Ok(sequence) if sequence >= 0 => Some(sequence),
                    _ => {
                        errors.add("page_token", "not a page token issued by incasso");
                        None
                    }
                },
                Some((_, print)) if print.len() == 16 => {
                    errors.add("page_token", "belongs to a query with other filters");
                    None
                }
                _ => {
                    errors.add("page_token", "not a page token issued by incasso");
                    None
                }
            }
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let (after, upto) = self.sequence_range(filter.from, filter.to).await?;
        let after = after_token.map_or(after, |token| std::cmp::max(token, after));
        let mut entries = self
            .entries_after(&filter, after, upto, page_size + 1)
            .await?;
        let more = entries.len() as u64 > page_size;
        entries.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
        let next_page_token = match (more, entries.last()) {
            (true, Some(last)) => format!("{}.{fingerprint}", last.entry.sequence),
            _ => String::new(),
        };
        Ok(EntryPage {
            entries,
            next_page_token,
        })
    }

    /// Export support: parses a filter once, for [`Store::export_chunk`].
    pub fn parse_export_filter(&self, input: &EntryFilterInput) -> Result<ExportFilter, AppError> {
        let mut errors = ValidationErrors::new();
        let filter = input.parse(self.registry(), &mut errors);
        errors
            .into_result(|| ExportFilter {
                filter,
                range: None,
            })
            .map_err(AppError::Invalid)
    }

    /// The next chunk of an export after sequence `after`; empty at the end. Each chunk is a
    /// bounded query, so an export of any size holds one chunk in memory at a time.
    pub async fn export_chunk(
        &self,
        export: &mut ExportFilter,
        after: i64,
        limit: u64,
    ) -> Result<Vec<StoredEntry>, AppError> {
        let (start, upto) = match export.range {
            Some(range) => range,
            None => {
                let range = self
                    .sequence_range(export.filter.from, export.filter.to)
                    .await?;
                // Entries appended while the export runs are not part of it.
                let head = self.ledger_head().await?.sequence;
                let range = (range.0, std::cmp::min(range.1, head));
                export.range = Some(range);
                range
            }
        };
        self.entries_after(&export.filter, std::cmp::max(after, start), upto, limit)
            .await
    }

    /// One entry, by sequence number or id, with its source document.
    pub async fn get_ledger_entry(
        &self,
        sequence: Option<i64>,
        id: &str,
    ) -> Result<(StoredEntry, Option<SourceDocument>), AppError> {
        let row = match (sequence, id.trim()) {
            (Some(sequence), "") => {
                ledger_entry::Entity::find_by_id(sequence)
                    .one(self.db())
                    .await?
            }
            (None, id) if !id.is_empty() => {
                let id = Uuid::parse_str(id).map_err(|_| {
                    AppError::invalid("id", format!("'{id}' is not an entry id (UUID)"))
                })?;
                ledger_entry::Entity::find()
                    .filter(ledger_entry::Column::Id.eq(id))
                    .one(self.db())
                    .await?
            }
            _ => {
                return Err(AppError::invalid(
                    "sequence",
                    "give exactly one of sequence or id",
                ));
            }
        }
        .ok_or_else(|| AppError::NotFound {
            what: "ledger entry".to_owned(),
        })?;
        let document_id = row.source_document_id;
        let entry = self
            .complete(vec![row])
            .await?
            .pop()
            .ok_or_else(|| AppError::Internal("entry vanished".into()))?;
        let document = match document_id {
            None => None,
            Some(id) => match source_document::Entity::find_by_id(id)
                .one(self.db())
                .await?
            {
                None => None,
                Some(doc) => Some(SourceDocument {
                    id: doc.id,
                    content: self.keys().open_bytes(
                        doc.id,
                        &doc.key_id,
                        &doc.nonce,
                        &doc.ciphertext,
                    ),
                    sha256: doc
                        .sha256
                        .as_slice()
                        .try_into()
                        .map_err(|_| AppError::corrupt("source document hash"))?,
                    kind: doc.kind,
                    media_type: doc.media_type,
                    created_at: doc.created_at,
                }),
            },
        };
        Ok((entry, document))
    }

    /// Balances per account as of `as_of` (default: now), optionally for one creditor's books
    /// and one account type. Returns the last sequence included and the balances.
    pub async fn ledger_balances(
        &self,
        as_of: Option<OffsetDateTime>,
        creditor: &str,
        account_type: &str,
    ) -> Result<(i64, Vec<AccountBalance>), AppError> {
        let mut errors = ValidationErrors::new();
        let creditor = books_creditor(self.registry(), creditor, &mut errors);
        let account_type = (!account_type.trim().is_empty())
            .then(|| {
                let parsed = AccountType::from_name(account_type.trim());
                if parsed.is_none() {
                    errors.add(
                        "account_type",
                        format!("unknown account type '{}'", account_type.trim()),
                    );
                }
                parsed
            })
            .flatten();
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let upto = match as_of {
            Some(instant) => self.last_sequence_at(instant).await?,
            None => self.ledger_head().await?.sequence,
        };
        let mut query = Query::select();
        query
            .column(ledger_line::Column::Account)
            .expr_as(
                Expr::cust("CAST(SUM(amount_cents) AS BIGINT)"),
                Alias::new("balance"),
            )
            .from(ledger_line::Entity)
            .and_where(ledger_line::Column::EntrySequence.lte(upto))
            .group_by_col(ledger_line::Column::Account)
            .order_by(ledger_line::Column::Account, Order::Asc);
        if let Some(creditor) = &creditor {
            query.and_where(ledger_line::Column::CreditorFiscalCode.eq(creditor.as_str()));
        }
        if let Some(account_type) = account_type {
            query.and_where(ledger_line::Column::AccountType.eq(account_type.as_str()));
        }
        let rows = self.db().query_all(&query).await?;
        let mut balances = Vec::with_capacity(rows.len());
        for row in rows {
            balances.push(AccountBalance {
                account: row.try_get("", "account")?,
                balance_cents: sum_column(&row, "balance")?,
            });
        }
        Ok((upto, balances))
    }

    /// Debits and credits per account of the entries recorded from `from` to `to` (Rome
    /// calendar days, both included).
    pub async fn trial_balance(
        &self,
        from: &str,
        to: &str,
        creditor: &str,
    ) -> Result<Vec<TrialBalanceRow>, AppError> {
        let mut errors = ValidationErrors::new();
        let from = parse_date(from).map_err(|e| errors.add("from", e)).ok();
        let to = parse_date(to).map_err(|e| errors.add("to", e)).ok();
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            errors.add("to", "must not be before from");
        }
        let creditor = books_creditor(self.registry(), creditor, &mut errors);
        let (Some(from), Some(to)) = (from, to) else {
            return Err(AppError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let day_after = |d: Date| d.next_day().unwrap_or(d);
        let (after, upto) = self
            .sequence_range(
                Some(start_of_rome_day(from)),
                Some(start_of_rome_day(day_after(to))),
            )
            .await?;
        let positive = Expr::cust(
            "CAST(SUM(CASE WHEN amount_cents > 0 THEN amount_cents ELSE 0 END) AS BIGINT)",
        );
        let negative = Expr::cust(
            "CAST(SUM(CASE WHEN amount_cents < 0 THEN -amount_cents ELSE 0 END) AS BIGINT)",
        );
        let mut query = Query::select();
        query
            .column(ledger_line::Column::Account)
            .expr_as(positive, Alias::new("debit"))
            .expr_as(negative, Alias::new("credit"))
            .from(ledger_line::Entity)
            .and_where(ledger_line::Column::EntrySequence.gt(after))
            .and_where(ledger_line::Column::EntrySequence.lte(upto))
            .group_by_col(ledger_line::Column::Account)
            .order_by(ledger_line::Column::Account, Order::Asc);
        if let Some(creditor) = &creditor {
            query.and_where(ledger_line::Column::CreditorFiscalCode.eq(creditor.as_str()));
        }
        let rows = self.db().query_all(&query).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(TrialBalanceRow {
                account: row.try_get("", "account")?,
                debit_cents: sum_column(&row, "debit")?,
                credit_cents: sum_column(&row, "credit")?,
            });
        }
        Ok(out)
    }
}

/// A summed column, cast to BIGINT in SQL on both engines.
fn sum_column(row: &sea_orm::QueryResult, column: &str) -> Result<i64, AppError> {
    Ok(row.try_get::<Option<i64>>("", column)?.unwrap_or(0))
}

/// A parsed export filter and the sequence range it covers, fixed at its first chunk.
#[derive(Debug, Clone)]
pub struct ExportFilter {
    filter: EntryFilter,
    range: Option<(i64, i64)>,
}
