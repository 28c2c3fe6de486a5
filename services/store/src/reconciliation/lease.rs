//! The per-creditor lease of reconciliation's background work (the FdR poller, the receipt
//! recovery): one row per creditor in a table with `creditor_fiscal_code`, `lease_holder`
//! and `lease_until_micros`. The lease is taken by one conditional upsert (insert the row, or
//! take it over when it is free, expired or already ours), which PostgreSQL serialises on the
//! row and SQLite on its single writer, so two replicas never both hold it.

use sea_orm::{ConnectionTrait, Statement};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppError;
use crate::ledger::micros;
use crate::outbox::placeholders;

/// The tables that hold a lease; the only names these statements are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseTable {
    /// `recon_fdr_poll`.
    FdrPoll,
    /// `recon_recovery_lease`.
    Recovery,
}

impl LeaseTable {
    fn name(self) -> &'static str {
        match self {
            Self::FdrPoll => "recon_fdr_poll",
            Self::Recovery => "recon_recovery_lease",
        }
    }
}

/// `instant` plus `ms`, in microseconds since the epoch.
pub(crate) fn micros_after(instant: OffsetDateTime, ms: u64) -> i64 {
    micros(instant).saturating_add(
        i64::try_from(ms)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    )
}

/// Takes (or renews) `table`'s lease on `creditor` for `lease_ms` as `holder`; false when
/// another holder's lease is still running at `now`.
pub(crate) async fn take(
    db: &impl ConnectionTrait,
    table: LeaseTable,
    creditor: &str,
    holder: Uuid,
    lease_ms: u64,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    let backend = db.get_database_backend();
    let t = table.name();
    let sql = placeholders(
        backend,
        &format!(
            "INSERT INTO {t} (creditor_fiscal_code, lease_holder, lease_until_micros) \
             VALUES (?, ?, ?) \
             ON CONFLICT (creditor_fiscal_code) DO UPDATE \
             SET lease_holder = excluded.lease_holder, \
             lease_until_micros = excluded.lease_until_micros \
             WHERE {t}.lease_holder IS NULL \
             OR {t}.lease_until_micros <= ? \
             OR {t}.lease_holder = excluded.lease_holder \
             RETURNING creditor_fiscal_code"
        ),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                creditor.into(),
                holder.into(),
                micros_after(now, lease_ms).into(),
                micros(now).into(),
            ],
        ))
        .await?;
    Ok(!rows.is_empty())
}

/// Gives `table`'s lease on `creditor` up, if `holder` still has it.
pub(crate) async fn release(
    db: &impl ConnectionTrait,
    table: LeaseTable,
    creditor: &str,
    holder: Uuid,
) -> Result<(), AppError> {
    let backend = db.get_database_backend();
    let sql = placeholders(
        backend,
        &format!(
            "UPDATE {} SET lease_holder = NULL, lease_until_micros = 0 \
             WHERE creditor_fiscal_code = ? AND lease_holder = ?",
            table.name()
        ),
    );
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [creditor.into(), holder.into()],
    ))
    .await?;
    Ok(())
}
