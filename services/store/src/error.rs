//! The one error type of incasso's use cases. Each transport maps it in exactly one place
//! (gRPC: `incasso-grpc`'s status mapping; SOAP: the node crate's fault mapping).

use incasso_domain::debt_position::update::ChangeRefused;
use incasso_domain::validation::ValidationErrors;

/// Why a command or a query did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; nothing was stored.
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    /// What the request names does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, without personal data.
        what: String,
    },
    /// The request id was already used for a request with different content.
    #[error(
        "request_id {request_id} was already used for a different request; \
         use a new request_id for a new request"
    )]
    IdempotencyConflict {
        /// The reused id.
        request_id: String,
    },
    /// The request is well formed but the current state forbids it.
    #[error("{0}")]
    Refused(#[from] ChangeRefused),
    /// The database is unreachable or overloaded: retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sea_orm::DbErr> for AppError {
    fn from(error: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match &error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(error.to_string()),
            _ => Self::Internal(error.to_string()),
        }
    }
}

impl AppError {
    /// A single invalid field.
    pub fn invalid(field: &str, description: impl std::fmt::Display) -> Self {
        Self::Invalid(ValidationErrors::single(field, description))
    }

    /// Stored data that cannot be read back: a bug or tampering.
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Internal(format!("corrupt stored data: {what}"))
    }
}
