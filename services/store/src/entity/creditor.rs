//! A creditor institution, mirrored from the configuration.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "creditor")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub fiscal_code: String,
    pub name: String,
    pub segregation_code: Option<i16>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
