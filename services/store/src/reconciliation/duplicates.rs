//! Credits that are probably one bank movement imported twice, from two sources (an OPI
//! giornale and a camt statement of the same account, a camt.054 and the camt.053 that books
//! it again). Both stay credits, as the contract keys a credit by its id; this finds the pairs
//! the domain's [`same_movement`] ties together, so an import can warn of them and the credit
//! list can show them. The stored credits are searched by TRN and EndToEndId (partial
//! indexes), and the domain decides on what comes back.

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::{
    CreditId, DuplicateReason, MovementFacts, names_a_movement, same_movement,
};
use sea_orm::{ConnectionTrait, Statement};
use time::Date;

use super::evidence::in_list;
use crate::AppError;

/// Another credit that is probably the same movement as the one it is listed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PossibleDuplicate {
    /// The other credit.
    pub credit_id: CreditId,
    /// What ties the two.
    pub reason: DuplicateReason,
    /// The file the other credit was imported from.
    pub file_name: String,
}

/// What a credit's movement is recognised by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreditMovement {
    /// The credit.
    pub id: CreditId,
    /// Cents credited.
    pub amount_cents: i64,
    /// The value day.
    pub value_date: Date,
    /// The TRN, when the source gives it.
    pub trn: Option<String>,
    /// The EndToEndId, when the source gives it.
    pub end_to_end_id: Option<String>,
}

impl CreditMovement {
    fn facts(&self) -> MovementFacts<'_> {
        MovementFacts {
            amount_cents: self.amount_cents,
            value_date: self.value_date,
            trn: self.trn.as_deref(),
            end_to_end_id: self.end_to_end_id.as_deref(),
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("stored treasury credit is invalid: {what}"))
}

/// References per statement: two lists of them, under SQLite's bind parameter limit.
const REFERENCES_PER_STATEMENT: usize = super::scope::IUVS_PER_STATEMENT / 2;

/// For each of `credits` (all of `creditor`) that has any, the other stored credits of
/// `creditor` that are probably the same movement, in credit id order.
pub(crate) async fn possible_duplicates(
    db: &impl ConnectionTrait,
    creditor: &str,
    credits: &[CreditMovement],
) -> Result<BTreeMap<CreditId, Vec<PossibleDuplicate>>, AppError> {
    // A reference that names no movement (`NOTPROVIDED`, which every credit of some banks
    // carries) would read back half the creditor's credits for nothing.
    let references: BTreeSet<String> = credits
        .iter()
        .flat_map(|c| [c.trn.clone(), c.end_to_end_id.clone()])
        .flatten()
        .filter(|r| names_a_movement(r))
        .collect();
    let references: Vec<String> = references.into_iter().collect();
    let mut stored: BTreeMap<CreditId, (CreditMovement, String)> = BTreeMap::new();
    for chunk in references.chunks(REFERENCES_PER_STATEMENT) {
        let backend = db.get_database_backend();
        let mut values = vec![creditor.into()];
        let by_trn = in_list(backend, "c.trn", chunk, &mut values);
        let by_end_to_end = in_list(backend, "c.end_to_end_id", chunk, &mut values);
        let first = if backend == sea_orm::DbBackend::Postgres {
            "$1"
        } else {
            "?"
        };
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT c.credit_id, c.amount_cents, c.value_date, c.trn, c.end_to_end_id, \
                     d.file_name FROM recon_credit c JOIN recon_document d ON d.id = c.document_id \
                     WHERE c.creditor_fiscal_code = {first} AND ({by_trn} OR {by_end_to_end})"
                ),
                values,
            ))
            .await?;
        for row in rows {
            let id: String = row.try_get("", "credit_id")?;
            let id = CreditId::parse(&id).map_err(corrupt)?;
            let movement = CreditMovement {
                id: id.clone(),
                amount_cents: row.try_get("", "amount_cents")?,
                value_date: row.try_get("", "value_date")?,
                trn: row.try_get("", "trn")?,
                end_to_end_id: row.try_get("", "end_to_end_id")?,
            };
            stored.insert(id, (movement, row.try_get("", "file_name")?));
        }
    }
    let mut out: BTreeMap<CreditId, Vec<PossibleDuplicate>> = BTreeMap::new();
    for credit in credits {
        let found: Vec<PossibleDuplicate> = stored
            .values()
            .filter(|(other, _)| other.id != credit.id)
            .filter_map(|(other, file_name)| {
                same_movement(&credit.facts(), &other.facts()).map(|reason| PossibleDuplicate {
                    credit_id: other.id.clone(),
                    reason,
                    file_name: file_name.clone(),
                })
            })
            .collect();
        if !found.is_empty() {
            out.insert(credit.id.clone(), found);
        }
    }
    Ok(out)
}

/// The warnings of an import whose new credits are `new`: one per pair of credits that are
/// probably one movement (a pair of new credits once).
pub(crate) async fn warnings(
    db: &impl ConnectionTrait,
    creditor: &str,
    new: &[CreditMovement],
) -> Result<Vec<String>, AppError> {
    let new_ids: BTreeSet<&CreditId> = new.iter().map(|c| &c.id).collect();
    let found = possible_duplicates(db, creditor, new).await?;
    let mut out = Vec::new();
    for credit in new {
        for other in found.get(&credit.id).into_iter().flatten() {
            if new_ids.contains(&other.credit_id) && other.credit_id < credit.id {
                continue;
            }
            let reference = match other.reason {
                DuplicateReason::Trn => {
                    format!("TRN {}", credit.trn.as_deref().unwrap_or_default())
                }
                DuplicateReason::EndToEndId => format!(
                    "EndToEndId {}",
                    credit.end_to_end_id.as_deref().unwrap_or_default()
                ),
            };
            out.push(format!(
                "treasury credit {} of {} cents, value date {}, is probably the same movement as \
                 credit {} of {} (same {reference}, amount and value date): both are counted, \
                 as a credit is its id, so flows both of them cash read as divergent by {} \
                 cents; check with the treasury which one the account holds",
                credit.id,
                credit.amount_cents,
                credit.value_date,
                other.credit_id,
                other.file_name,
                credit.amount_cents
            ));
        }
    }
    Ok(out)
}
