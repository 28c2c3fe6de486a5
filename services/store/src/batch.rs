//! Multi-row inserts kept under both engines' bind-parameter limits.

use sea_orm::{ActiveModelTrait, DatabaseTransaction, EntityTrait, SqlErr};

use crate::error::AppError;

/// Bind parameters per statement, under SQLite's 32766 and PostgreSQL's 65535.
pub(crate) const MAX_BIND_PARAMETERS: usize = 30_000;

/// Inserts `models` (each with `columns` columns set) in as few statements as the limit allows.
pub(crate) async fn insert_chunked<A>(
    txn: &DatabaseTransaction,
    models: Vec<A>,
    columns: usize,
) -> Result<(), AppError>
where
    A: ActiveModelTrait + Send,
{
    let per_statement = (MAX_BIND_PARAMETERS / columns).max(1);
    let mut models = models.into_iter().peekable();
    while models.peek().is_some() {
        let chunk: Vec<A> = models.by_ref().take(per_statement).collect();
        <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_without_returning(txn)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(detail)) => {
                    AppError::Internal(format!("unique constraint violated: {detail}"))
                }
                _ => AppError::from(e),
            })?;
    }
    Ok(())
}
