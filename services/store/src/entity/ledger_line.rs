//! A line of a journal entry.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_line")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub entry_sequence: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line_index: i16,
    pub account: String,
    pub account_type: String,
    pub creditor_fiscal_code: String,
    pub kind: Option<String>,
    pub amount_cents: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
