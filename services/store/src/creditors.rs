//! Mirrors the configured creditor registry into the database at start-up, so positions can
//! reference their creditor and an auditor can see which accounts were registered. The
//! registry in memory stays the source of truth for validation.

use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set, TransactionTrait};
use time::OffsetDateTime;

use incasso_domain::creditor::CreditorRegistry;

use crate::IuvFloors;
use crate::entity::{creditor, creditor_account};
use crate::error::AppError;
use crate::sequence;

/// Upserts every creditor and its accounts, and ensures each issuing creditor's IUV counter.
pub async fn sync(
    db: &sea_orm::DatabaseConnection,
    registry: &CreditorRegistry,
    floors: &IuvFloors,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let txn = db.begin().await?;
    for entry in registry.iter() {
        let fiscal_code = entry.fiscal_code().as_str().to_owned();
        creditor::Entity::insert(creditor::ActiveModel {
            fiscal_code: Set(fiscal_code.clone()),
            name: Set(entry.name().to_owned()),
            segregation_code: Set(entry.segregation_code().map(|s| i16::from(s.get()))),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(creditor::Column::FiscalCode)
                .update_columns([
                    creditor::Column::Name,
                    creditor::Column::SegregationCode,
                    creditor::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        let accounts = entry
            .bank_ibans()
            .iter()
            .map(|iban| (iban, false))
            .chain(entry.postal_ibans().iter().map(|iban| (iban, true)));
        for (iban, postal) in accounts {
            creditor_account::Entity::insert(creditor_account::ActiveModel {
                creditor_fiscal_code: Set(fiscal_code.clone()),
                iban: Set(iban.as_str().to_owned()),
                postal: Set(postal),
            })
            .on_conflict(
                OnConflict::columns([
                    creditor_account::Column::CreditorFiscalCode,
                    creditor_account::Column::Iban,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        if let Some(segregation_code) = entry.segregation_code() {
            let floor = floors
                .floors
                .iter()
                .find(|(code, _)| *code == fiscal_code)
                .map_or(1, |(_, floor)| *floor);
            sequence::ensure_counter(&txn, &fiscal_code, segregation_code.get(), floor, now)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}
