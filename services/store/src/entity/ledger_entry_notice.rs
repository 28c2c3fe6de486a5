//! A notice an entry concerns.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entry_notice")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub entry_sequence: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub notice_index: i16,
    pub notice_number: String,
    pub iuv: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
