//! What one transfer key's `reported` entries have posted (migration 28).
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_reported_position")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub creditor_fiscal_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub posting_key: String,
    pub amounts: String,
    pub reporting_flow_id: Option<String>,
    pub reporting_flow_revision: Option<i32>,
    pub receipt_id: Option<String>,
    pub notice_number: Option<String>,
    pub iuv: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
