//! The ledger in the database: the writer that chains entries in the transaction of the
//! business change that caused them, and the read side auditors use (entries, balances,
//! trial balance, verification, export).
//!
//! Appends take the chain head's row lock (an UPDATE of the single `ledger_head` row) as the
//! last step before commit, so entries from several replicas get consecutive sequence numbers
//! and each hash covers its predecessor, while the lock is held only for the inserts of the
//! entries themselves. `recorded_at` never goes backwards along the chain (it is at least the
//! previous entry's), which turns every time range into a sequence range.

mod reader;
pub(crate) mod reported_positions;
mod verify;
mod writer;

use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::ledger::chain::ChainedEntry;

pub use reader::{AccountBalance, EntryFilterInput, EntryPage, ExportFilter, TrialBalanceRow};
pub use verify::{Checkpoint, VerifyReport};
pub(crate) use writer::document_rows;
pub(crate) use writer::micros;
pub use writer::{SourceDocumentInput, append, append_with_documents, store_documents};

/// An entry as read back, with the id of its source document.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The entry and its place in the chain.
    pub entry: ChainedEntry,
    /// The stored source document behind it.
    pub source_document_id: Option<Uuid>,
}

/// A source document, decrypted.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// Its id.
    pub id: Uuid,
    /// What it is ("grpc.CreateDebtPosition", "pagopa.paSendRTV2", ...).
    pub kind: String,
    /// MIME type of the content.
    pub media_type: String,
    /// SHA-256 of the content as stored when it arrived.
    pub sha256: [u8; 32],
    /// The content; `None` when it can no longer be decrypted (key rotated away or altered).
    pub content: Option<Vec<u8>>,
    /// When it was stored.
    pub created_at: OffsetDateTime,
}
