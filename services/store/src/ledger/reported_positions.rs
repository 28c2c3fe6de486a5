//! What each transfer key's `reported` postings have posted: the per-key record behind the
//! entries reconciliation journals per flow revision
//! (`incasso_domain::ledger::settlement::merge_reported`). The settlement reads a key's
//! position to post only its difference, and writes it back in the same transaction as the
//! entry that moves it; `VerifyLedger` checks that a creditor's positions sum, account by
//! account, to its `reported` entries.

use std::collections::BTreeMap;

use incasso_domain::ledger::rules::Amounts;
use incasso_domain::ledger::settlement::Posted;
use incasso_domain::ledger::{Account, Cause};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::AppError;
use crate::batch::{OnConflict, insert_rows, is_in};
use crate::entity::ledger_reported_position as position;

/// Keys per read: the positions of one slice's keys in a statement or two.
const KEYS_PER_STATEMENT: usize = 5_000;

/// The columns of a position row.
const COLUMNS: usize = 8;

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::corrupt(format!("a reported position is invalid: {what}"))
}

/// `account=cents;…`, the accounts in their order.
fn encode(amounts: &Amounts) -> String {
    amounts
        .iter()
        .filter(|(_, cents)| **cents != 0)
        .map(|(account, cents)| format!("{account}={cents}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The amounts [`encode`] wrote (or the migration summed from the per-key entries).
fn decode(text: &str) -> Result<Amounts, AppError> {
    let mut amounts = Amounts::new();
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let (account, cents) = part.rsplit_once('=').ok_or_else(|| corrupt(part))?;
        let account = Account::parse(account).map_err(corrupt)?;
        let cents: i64 = cents.parse().map_err(|_| corrupt(part))?;
        *amounts.entry(account).or_insert(0) += cents;
    }
    amounts.retain(|_, cents| *cents != 0);
    Ok(amounts)
}

/// The positions of `creditor`'s posting keys `keys` that have one.
pub(crate) async fn of_keys(
    db: &impl ConnectionTrait,
    creditor: &str,
    keys: &[String],
) -> Result<BTreeMap<String, Posted>, AppError> {
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        let rows = position::Entity::find()
            .filter(position::Column::CreditorFiscalCode.eq(creditor))
            .filter(is_in(
                db.get_database_backend(),
                position::Column::PostingKey,
                chunk.to_vec(),
            ))
            .all(db)
            .await?;
        for row in rows {
            let revision = row
                .reporting_flow_revision
                .map(u32::try_from)
                .transpose()
                .map_err(corrupt)?;
            let notices = match (row.notice_number, row.iuv) {
                (Some(nav), Some(iuv)) => vec![(nav, iuv)],
                _ => Vec::new(),
            };
            out.insert(
                row.posting_key.clone(),
                Posted {
                    amounts: decode(&row.amounts)?,
                    cause: Cause {
                        notices,
                        receipt_id: row.receipt_id,
                        reporting_flow_id: row.reporting_flow_id,
                        reporting_flow_revision: revision,
                        posting_key: Some(row.posting_key),
                        ..Cause::default()
                    },
                },
            );
        }
    }
    Ok(out)
}

/// Stores `positions` (posting key to what it has posted now) for `creditor`, replacing what
/// was stored for those keys.
pub(crate) async fn write(
    txn: &DatabaseTransaction,
    creditor: &str,
    positions: &BTreeMap<String, Posted>,
) -> Result<(), AppError> {
    let rows: Vec<position::ActiveModel> = positions
        .iter()
        .map(|(posting_key, posted)| {
            let notice = posted.cause.notices.first();
            position::ActiveModel {
                creditor_fiscal_code: Set(creditor.to_owned()),
                posting_key: Set(posting_key.clone()),
                amounts: Set(encode(&posted.amounts)),
                reporting_flow_id: Set(posted.cause.reporting_flow_id.clone()),
                reporting_flow_revision: Set(posted
                    .cause
                    .reporting_flow_revision
                    .and_then(|r| i32::try_from(r).ok())),
                receipt_id: Set(posted.cause.receipt_id.clone()),
                notice_number: Set(notice.map(|(nav, _)| nav.clone())),
                iuv: Set(notice.map(|(_, iuv)| iuv.clone())),
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    insert_rows(
        txn,
        rows,
        COLUMNS,
        OnConflict::Replace(&["creditor_fiscal_code", "posting_key"]),
    )
    .await?;
    Ok(())
}

/// Positions read per page by [`sums`].
const PAGE: u64 = 10_000;

/// What `creditor`'s positions sum to per account, accounts at zero left out; read a page at
/// a time, so memory stays flat whatever the number of keys.
pub(crate) async fn sums(db: &impl ConnectionTrait, creditor: &str) -> Result<Amounts, AppError> {
    let mut out = Amounts::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = position::Entity::find()
            .filter(position::Column::CreditorFiscalCode.eq(creditor))
            .order_by_asc(position::Column::PostingKey)
            .limit(PAGE);
        if let Some(after) = &after {
            query = query.filter(position::Column::PostingKey.gt(after.as_str()));
        }
        let rows = query.all(db).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.posting_key.clone());
        for row in &rows {
            for (account, cents) in decode(&row.amounts)? {
                *out.entry(account).or_insert(0) += cents;
            }
        }
    }
    out.retain(|_, cents| *cents != 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use incasso_domain::fiscal_code::OrganizationFiscalCode;
    use proptest::prelude::*;

    proptest! {
        /// A position's amounts read back as they were written, zeros dropped.
        #[test]
        fn amounts_survive_their_text(
            cents in proptest::collection::vec(-10_000_000i64..10_000_000, 0..4),
            psp in "[A-Z0-9]{8}",
        ) {
            let c = OrganizationFiscalCode::parse("01199250158").unwrap();
            let accounts = [
                Account::in_transit(&c),
                Account::psp_clearing(&c, &psp),
                Account::suspense(&c),
                Account::treasury(&c),
            ];
            let amounts: Amounts = accounts.into_iter().zip(cents).collect();
            let mut expected = amounts.clone();
            expected.retain(|_, c| *c != 0);
            prop_assert_eq!(decode(&encode(&amounts)).unwrap(), expected);
        }
    }
}
