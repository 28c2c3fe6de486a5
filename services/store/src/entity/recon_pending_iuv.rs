//! An IUV with receipt transfers to a creditor that reconciliation has not labelled yet.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_pending_iuv")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub creditor_fiscal_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub iuv: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
