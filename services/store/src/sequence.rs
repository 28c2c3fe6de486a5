//! Allocation of IUV bases: the 13-digit number inside every notice number incasso issues.
//!
//! One counter row per creditor and segregation code is advanced by a single atomic
//! `UPDATE ... RETURNING`, in its own short transaction before the business transaction
//! starts. The counter only moves forward, so a base is handed out once, ever, whichever
//! replica asks; a business transaction that later fails leaves a gap, which is harmless
//! (the number space is 10^13) and is exactly what "never reused" requires. Allocating outside
//! the business transaction keeps the counter row's lock to a few microseconds, so concurrent
//! creations on several replicas do not queue behind each other's inserts. The unique indexes
//! on (creditor, notice number) and (creditor, IUV) are the last line of defence.

use std::ops::Range;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use time::OffsetDateTime;

use crate::entity::iuv_sequence;
use crate::error::AppError;

/// One past the largest 13-digit base.
pub const BASE_LIMIT: i64 = 10_000_000_000_000;

/// Creates the counter of a creditor and segregation code if missing, and raises it to
/// `floor` (the first base incasso may use, above any number issued by a previous system).
pub async fn ensure_counter(
    db: &impl ConnectionTrait,
    creditor: &str,
    segregation_code: u8,
    floor: i64,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let floor = std::cmp::max(floor, 1);
    iuv_sequence::Entity::insert(iuv_sequence::ActiveModel {
        creditor_fiscal_code: Set(creditor.to_owned()),
        segregation_code: Set(i16::from(segregation_code)),
        next_base: Set(floor),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            iuv_sequence::Column::CreditorFiscalCode,
            iuv_sequence::Column::SegregationCode,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let raise = Query::update()
        .table(iuv_sequence::Entity)
        .value(iuv_sequence::Column::NextBase, floor)
        .value(iuv_sequence::Column::UpdatedAt, now)
        .and_where(Expr::col(iuv_sequence::Column::CreditorFiscalCode).eq(creditor))
        .and_where(Expr::col(iuv_sequence::Column::SegregationCode).eq(i16::from(segregation_code)))
        .and_where(Expr::col(iuv_sequence::Column::NextBase).lt(floor))
        .to_owned();
    db.execute(&raise).await?;
    Ok(())
}

/// Reserves `count` consecutive bases for a creditor and segregation code. Must be called on
/// a connection with no transaction open, so the reservation commits on its own.
pub async fn allocate(
    db: &impl ConnectionTrait,
    creditor: &str,
    segregation_code: u8,
    count: usize,
    now: OffsetDateTime,
) -> Result<Range<u64>, AppError> {
    let count =
        i64::try_from(count).map_err(|_| AppError::Internal("allocation too large".into()))?;
    assert!(count > 0, "allocating zero IUV bases");
    let update = Query::update()
        .table(iuv_sequence::Entity)
        .value(
            iuv_sequence::Column::NextBase,
            Expr::col(iuv_sequence::Column::NextBase).add(count),
        )
        .value(iuv_sequence::Column::UpdatedAt, now)
        .and_where(Expr::col(iuv_sequence::Column::CreditorFiscalCode).eq(creditor))
        .and_where(Expr::col(iuv_sequence::Column::SegregationCode).eq(i16::from(segregation_code)))
        .returning(Query::returning().column(iuv_sequence::Column::NextBase))
        .to_owned();
    let row = db.query_one(&update).await?.ok_or_else(|| {
        AppError::Internal(format!(
            "no IUV counter for creditor {creditor} segregation code {segregation_code:02}"
        ))
    })?;
    let next: i64 = row.try_get("", "next_base")?;
    if next > BASE_LIMIT {
        // The counter stays past the limit, so every later allocation fails too: nothing is
        // ever issued with a base that does not fit in 13 digits.
        return Err(AppError::Internal(format!(
            "IUV bases exhausted for creditor {creditor} segregation code {segregation_code:02}"
        )));
    }
    let start = next - count;
    assert!(start >= 1, "IUV counter below its floor");
    Ok(u64::try_from(start).unwrap_or(0)..u64::try_from(next).unwrap_or(0))
}
