//! Idempotency of commands: every command carries a key the caller chose (`request_id`,
//! unique per creditor) and the SHA-256 of its content. The `command` row is inserted first
//! in the command's transaction with insert-or-nothing; whoever inserts it does the work, and
//! every other copy of the request (a retry, or a concurrent duplicate that waited on the
//! row) finds it and either replays the outcome (same content) or is refused (other content).

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entity::command;
use crate::error::AppError;

/// What kind of command a key was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// CreateDebtPosition (single or bulk).
    Create,
    /// UpdateDebtPosition.
    Update,
    /// CancelDebtPosition.
    Cancel,
}

impl CommandKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Cancel => "cancel",
        }
    }
}

/// The content hash of a request: SHA-256 over its canonical JSON encoding, prefixed by the
/// command kind so the same body sent to two different commands never matches.
pub fn request_sha256(kind: CommandKind, request: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_str().as_bytes());
    hasher.update(b"\0");
    #[allow(clippy::expect_used)]
    hasher.update(serde_json::to_vec(request).expect("requests always serialise"));
    hex::encode(hasher.finalize())
}

/// A command's key and hash.
#[derive(Debug, Clone)]
pub struct CommandKey {
    /// Creditor the key is scoped to.
    pub creditor_fiscal_code: String,
    /// The caller's request id.
    pub request_id: String,
    /// The command.
    pub kind: CommandKind,
    /// Content hash.
    pub request_sha256: String,
}

impl CommandKey {
    /// Records the command for `debt_position_id`; false when the key already exists.
    pub async fn record(
        &self,
        db: &impl ConnectionTrait,
        debt_position_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, AppError> {
        let result = command::Entity::insert(self.active_model(debt_position_id, now))
            .on_conflict(
                OnConflict::columns([
                    command::Column::CreditorFiscalCode,
                    command::Column::RequestId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        Ok(result == 1)
    }

    /// The row to insert.
    pub fn active_model(
        &self,
        debt_position_id: Uuid,
        now: OffsetDateTime,
    ) -> command::ActiveModel {
        command::ActiveModel {
            creditor_fiscal_code: Set(self.creditor_fiscal_code.clone()),
            request_id: Set(self.request_id.clone()),
            kind: Set(self.kind.as_str().to_owned()),
            request_sha256: Set(self.request_sha256.clone()),
            debt_position_id: Set(debt_position_id),
            created_at: Set(now),
        }
    }

    /// The stored command with this key, if any.
    pub async fn find(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<Option<command::Model>, AppError> {
        Ok(command::Entity::find_by_id((
            self.request_id.clone(),
            self.creditor_fiscal_code.clone(),
        ))
        .one(db)
        .await?)
    }

    /// Compares a stored command with this request: the position to replay, or a conflict.
    pub fn replay_of(&self, stored: &command::Model) -> Result<Uuid, AppError> {
        if stored.kind == self.kind.as_str() && stored.request_sha256 == self.request_sha256 {
            Ok(stored.debt_position_id)
        } else {
            tracing::warn!(
                creditor = %self.creditor_fiscal_code,
                stored_kind = %stored.kind,
                kind = self.kind.as_str(),
                "request_id reused with different content (the id itself is not logged: callers may put personal data in it)"
            );
            Err(AppError::IdempotencyConflict {
                request_id: self.request_id.clone(),
            })
        }
    }
}
