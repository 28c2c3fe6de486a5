//! How PostgreSQL plans the statements of an import's transaction: its reads afresh for
//! their own parameters, its writes from cached plans.
//!
//! The reads go by lists of thousands of IUVs into tables the transaction is itself filling.
//! A generic plan cached while `recon_label` was empty (a sequential scan testing each row
//! against the whole `= ANY($1)` list, unhashed) was kept while the table grew, so a day's
//! first labelling went quadratic: 9 s per slice at 100,000 receipts. A custom plan sees the
//! list as a constant (hashed) and the table's current size, so relabelling plans each read
//! ([`reads_planned_afresh`]). That setting holds for every statement the transaction runs,
//! including the foreign-key checks PostgreSQL makes for each row a write inserts: planned
//! afresh, each check cost a planning, about a sixth of the server's time in an import
//! (`perf`, FdR import of 100,000 receipts). The writes therefore run with the usual plan
//! cache ([`with_cached_plans`]), which plans a check once.

use std::future::Future;

use sea_orm::{ConnectionTrait, DbBackend};

use crate::AppError;

/// From here to the end of the transaction (or to [`with_cached_plans`]), PostgreSQL plans
/// each statement for its own parameters.
pub(crate) async fn reads_planned_afresh(db: &impl ConnectionTrait) -> Result<(), AppError> {
    set(db, "force_custom_plan").await
}

/// Runs `writes` (in a transaction whose reads are [`reads_planned_afresh`]) with the usual
/// plan cache, then plans reads afresh again. A failed write leaves the setting as it is: the
/// transaction is lost anyway.
pub(crate) async fn with_cached_plans<T>(
    db: &impl ConnectionTrait,
    writes: impl Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    set(db, "auto").await?;
    let written = writes.await?;
    set(db, "force_custom_plan").await?;
    Ok(written)
}

async fn set(db: &impl ConnectionTrait, mode: &str) -> Result<(), AppError> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!("SET LOCAL plan_cache_mode = {mode}"))
            .await?;
    }
    Ok(())
}
