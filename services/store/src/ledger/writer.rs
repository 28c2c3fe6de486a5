//! Appending entries: validated, chained under the head lock, written in the caller's
//! transaction.

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, Set};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::ledger::EntryDraft;
use incasso_domain::ledger::chain::ChainedEntry;

use crate::batch::{OnConflict, Writes, insert_chunked, json_of};
use crate::entity::{ledger_entry, ledger_entry_notice, ledger_head, ledger_line, source_document};
use crate::error::AppError;
use crate::pii::PrivacyKeys;

/// A document to store beside the entries it caused.
#[derive(Debug, Clone)]
pub struct SourceDocumentInput {
    /// What it is.
    pub kind: &'static str,
    /// MIME type.
    pub media_type: &'static str,
    /// The bytes as received.
    pub content: Vec<u8>,
}

fn hash32(bytes: &[u8]) -> Result<[u8; 32], AppError> {
    bytes
        .try_into()
        .map_err(|_| AppError::corrupt("a ledger hash is not 32 bytes"))
}

/// Stores source documents (encrypted) in the caller's transaction; returns their ids and the
/// SHA-256 of their content, for [`append_with_documents`].
pub async fn store_documents(
    txn: &DatabaseTransaction,
    keys: &PrivacyKeys,
    documents: Vec<SourceDocumentInput>,
    now: OffsetDateTime,
) -> Result<Vec<(Uuid, [u8; 32])>, AppError> {
    let (document_refs, document_rows) = document_rows(keys, documents, now);
    insert_chunked(txn, document_rows, 8).await?;
    Ok(document_refs)
}

/// The rows of source documents (encrypted), with their ids and the SHA-256 of their
/// content, for a caller that writes them with others.
pub(crate) fn document_rows(
    keys: &PrivacyKeys,
    documents: Vec<SourceDocumentInput>,
    now: OffsetDateTime,
) -> (Vec<(Uuid, [u8; 32])>, Vec<source_document::ActiveModel>) {
    let mut document_refs = Vec::with_capacity(documents.len());
    let mut document_rows = Vec::with_capacity(documents.len());
    for document in documents {
        let id = Uuid::now_v7();
        let sha256: [u8; 32] = Sha256::digest(&document.content).into();
        let sealed = keys.seal_bytes(id, &document.content);
        document_rows.push(source_document::ActiveModel {
            id: Set(id),
            kind: Set(document.kind.to_owned()),
            media_type: Set(document.media_type.to_owned()),
            sha256: Set(sha256.to_vec()),
            key_id: Set(sealed.key_id),
            nonce: Set(sealed.nonce),
            ciphertext: Set(sealed.ciphertext),
            created_at: Set(now),
        });
        document_refs.push((id, sha256));
    }
    (document_refs, document_rows)
}

/// Appends `postings` (each a draft and the index of its document in `documents`, if any) to
/// the chain, in the caller's transaction. Returns the chained entries.
pub async fn append(
    txn: &DatabaseTransaction,
    keys: &PrivacyKeys,
    documents: Vec<SourceDocumentInput>,
    postings: Vec<(EntryDraft, Option<usize>)>,
    now: OffsetDateTime,
) -> Result<Vec<ChainedEntry>, AppError> {
    validate(&postings)?;
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let document_refs = store_documents(txn, keys, documents, now).await?;
    append_with_documents(txn, &document_refs, postings, now).await
}

/// An instant as microseconds since the epoch.
pub(crate) fn micros(instant: OffsetDateTime) -> i64 {
    i64::try_from(instant.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn validate(postings: &[(EntryDraft, Option<usize>)]) -> Result<(), AppError> {
    for (draft, _) in postings {
        if let Err(error) = draft.validate() {
            return Err(AppError::Internal(format!(
                "a posting rule produced an invalid {} entry: {error}",
                draft.event_type.as_str()
            )));
        }
    }
    Ok(())
}

/// Appends `postings` whose documents are already stored (`document_refs`).
pub async fn append_with_documents(
    txn: &DatabaseTransaction,
    document_refs: &[(Uuid, [u8; 32])],
    postings: Vec<(EntryDraft, Option<usize>)>,
    now: OffsetDateTime,
) -> Result<Vec<ChainedEntry>, AppError> {
    validate(&postings)?;
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    // The head lock: from here to commit, no other transaction can append.
    let lock = Query::update()
        .table(ledger_head::Entity)
        .value(ledger_head::Column::Id, Expr::col(ledger_head::Column::Id))
        .and_where(ledger_head::Column::Id.eq(1))
        .returning(Query::returning().columns([
            ledger_head::Column::LastSequence,
            ledger_head::Column::LastHash,
            ledger_head::Column::LastRecordedAt,
        ]))
        .to_owned();
    let head = txn
        .query_one(&lock)
        .await?
        .ok_or_else(|| AppError::corrupt("the ledger head row is missing"))?;
    let mut sequence: i64 = head.try_get("", "last_sequence")?;
    let mut previous = hash32(&head.try_get::<Vec<u8>>("", "last_hash")?)?;
    let last_recorded_at: Option<OffsetDateTime> = head.try_get("", "last_recorded_at")?;
    let recorded_at = last_recorded_at.map_or(now, |last| last.max(now));

    let mut entries = Vec::with_capacity(postings.len());
    let mut entry_rows = Vec::with_capacity(postings.len());
    let mut line_rows = Vec::new();
    let mut notice_rows = Vec::new();
    for (draft, document) in postings {
        sequence += 1;
        let document = document.and_then(|i| document_refs.get(i)).copied();
        let (chained, body) = ChainedEntry::chain_with_body(
            sequence,
            Uuid::now_v7(),
            recorded_at,
            document.map(|(_, sha)| sha),
            draft,
            previous,
        );
        previous = chained.hash;
        let draft = &chained.draft;
        entry_rows.push(ledger_entry::ActiveModel {
            sequence: Set(sequence),
            id: Set(chained.id),
            event_type: Set(draft.event_type.as_str().to_owned()),
            creditor_fiscal_code: Set(draft.creditor.as_str().to_owned()),
            kind: Set(draft.kind.map(|k| k.as_str().to_owned())),
            description: Set(draft.description.clone()),
            debt_position_id: Set(draft.cause.debt_position_id),
            receipt_id: Set(draft.cause.receipt_id.clone()),
            reporting_flow_id: Set(draft.cause.reporting_flow_id.clone()),
            treasury_line_id: Set(draft.cause.treasury_line_id.clone()),
            corrects_sequence: Set(draft.cause.corrects_sequence),
            source_document_id: Set(document.map(|(id, _)| id)),
            source_document_sha256: Set(document.map(|(_, sha)| sha.to_vec())),
            recorded_at: Set(recorded_at),
            recorded_micros: Set(micros(recorded_at)),
            previous_hash: Set(chained.previous_hash.to_vec()),
            hash: Set(chained.hash.to_vec()),
            body: Set(body),
            reporting_flow_revision: Set(draft
                .cause
                .reporting_flow_revision
                .map(|r| i32::try_from(r).unwrap_or(i32::MAX))),
            posting_key: Set(draft.cause.posting_key.clone()),
        });
        for (index, line) in draft.lines.iter().enumerate() {
            line_rows.push(ledger_line::ActiveModel {
                entry_sequence: Set(sequence),
                line_index: Set(i16::try_from(index).unwrap_or(i16::MAX)),
                account: Set(line.account.code()),
                account_type: Set(line.account.account_type().as_str().to_owned()),
                creditor_fiscal_code: Set(line.account.creditor().as_str().to_owned()),
                kind: Set(line.account.kind().map(|k| k.as_str().to_owned())),
                amount_cents: Set(line.amount_cents),
            });
        }
        for (index, (notice_number, iuv)) in draft.cause.notices.iter().enumerate() {
            notice_rows.push(ledger_entry_notice::ActiveModel {
                entry_sequence: Set(sequence),
                notice_index: Set(i16::try_from(index).unwrap_or(i16::MAX)),
                notice_number: Set(notice_number.clone()),
                iuv: Set(iuv.clone()),
            });
        }
        entries.push(chained);
    }
    // The entries, their lines and notices and the new head go in one statement on
    // PostgreSQL: the head lock is held for as few round trips as possible.
    let mut writes = Writes::new(txn);
    writes.insert(entry_rows, 20, OnConflict::Fail).await?;
    writes.insert(line_rows, 7, OnConflict::Fail).await?;
    writes.insert(notice_rows, 4, OnConflict::Fail).await?;
    if writes.gathers() {
        let head = serde_json::json!([{
            "id": 1,
            "last_sequence": sequence,
            "last_hash": json_of(&previous.to_vec().into(), "ledger_head", "last_hash")?,
            "last_recorded_at": json_of(&recorded_at.into(), "ledger_head", "last_recorded_at")?,
        }]);
        writes.push_json(
            "UPDATE ledger_head AS h SET last_sequence = j.last_sequence, \
             last_hash = j.last_hash, last_recorded_at = j.last_recorded_at \
             FROM json_populate_recordset(NULL::ledger_head, $ROWS::json) AS j WHERE h.id = j.id"
                .to_owned(),
            head.to_string(),
        );
        writes.send().await?;
    } else {
        writes.send().await?;
        let advance = Query::update()
            .table(ledger_head::Entity)
            .value(ledger_head::Column::LastSequence, sequence)
            .value(ledger_head::Column::LastHash, previous.to_vec())
            .value(ledger_head::Column::LastRecordedAt, recorded_at)
            .and_where(ledger_head::Column::Id.eq(1))
            .to_owned();
        txn.execute(&advance).await?;
    }
    Ok(entries)
}
