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
        if is_transient(&error) {
            Self::Unavailable(error.to_string())
        } else {
            Self::Internal(error.to_string())
        }
    }
}

/// Whether a database error may go away by itself: the connection is lost or refused, the
/// server is shutting down or out of resources, or the transaction lost a deadlock or a
/// serialization race. The PagoPA Node retries only what is reported as transient, so a
/// deadlocked receipt must be reported as such, while a constraint violation must not.
fn is_transient(error: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as SqlxError;
    use sea_orm::{DbErr, RuntimeErr};
    let runtime = match error {
        // Connecting failed (refused, the database gone, the pool exhausted): unavailable.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => true,
        SqlxError::Database(database) => database
            .code()
            .is_some_and(|code| transient_code(database.kind(), &code)),
        _ => false,
    }
}

/// Transient SQLSTATEs (PostgreSQL) and result codes (SQLite).
fn transient_code(kind: sea_orm::sqlx::error::ErrorKind, code: &str) -> bool {
    use sea_orm::sqlx::error::ErrorKind;
    if matches!(
        kind,
        ErrorKind::UniqueViolation
            | ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::CheckViolation
    ) {
        return false;
    }
    // A PostgreSQL SQLSTATE is always five characters; SQLite reports its (extended) result
    // code in decimal, at most four digits: BUSY is 5, LOCKED 6, and the extended codes keep
    // the primary one in the low byte.
    if code.len() < 5
        && let Ok(sqlite) = code.parse::<u32>()
    {
        return matches!(sqlite & 0xff, 5 | 6);
    }
    // PostgreSQL: connection exceptions (08), serialization failure, deadlock, insufficient
    // resources (53), lock not available, administrator or crash shutdown, cannot connect now,
    // and the session ended for idling in a transaction (its transaction was rolled back).
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "25P03"
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sqlx::error::ErrorKind;

    #[test]
    fn only_transient_database_failures_are_unavailable() {
        for code in [
            "40P01", "40001", "08006", "53300", "57P01", "25P03", "5", "517", "6",
        ] {
            assert!(transient_code(ErrorKind::Other, code), "{code}");
        }
        for code in ["23505", "42P01", "22001", "19", "2067", "1"] {
            assert!(!transient_code(ErrorKind::Other, code), "{code}");
        }
        assert!(!transient_code(ErrorKind::UniqueViolation, "5"));
        let closed = sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal("closed".into()));
        assert!(matches!(AppError::from(closed), AppError::Unavailable(_)));
        let bug = sea_orm::DbErr::Custom("bug".into());
        assert!(matches!(AppError::from(bug), AppError::Internal(_)));
        let io = sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::Io(std::io::Error::other("reset")),
        )));
        assert!(matches!(AppError::from(io), AppError::Unavailable(_)));
    }
}
