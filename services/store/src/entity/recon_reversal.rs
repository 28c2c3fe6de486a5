//! A reversal of a treasury credit, as a document reported it.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_reversal")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub creditor_fiscal_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub reversal_key: String,
    pub reference: Option<String>,
    pub reverses_bill: Option<String>,
    pub amount_cents: Option<i64>,
    pub booking_date: Option<TimeDate>,
    pub account: String,
    pub document_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
