//! A treasury credit of a creditor's account.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_credit")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub creditor_fiscal_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub credit_id: String,
    pub amount_cents: i64,
    pub booking_date: TimeDate,
    pub value_date: TimeDate,
    pub causale: String,
    pub trn: Option<String>,
    pub ordering_party: Option<String>,
    pub end_to_end_id: Option<String>,
    pub account: String,
    pub document_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
