//! One transfer of a stored receipt, as reconciliation with the reporting flows reads it.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "receipt_transfer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub receipt_row_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub transfer_index: i16,
    pub creditor_fiscal_code: String,
    pub iuv: String,
    pub receipt_id: String,
    pub id_transfer: i16,
    pub beneficiary_fiscal_code: String,
    pub iban: Option<String>,
    pub amount_cents: i64,
    pub remittance_information: String,
    pub transfer_category: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
