//! A transfer row: one share of an installment.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transfer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub installment_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub transfer_index: i16,
    pub beneficiary_fiscal_code: String,
    pub amount_cents: i64,
    pub remittance_information: String,
    pub iban: String,
    pub postal_iban: Option<String>,
    pub taxonomy_code: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
