//! The lease that lets one replica recover a creditor's missing receipts at a time.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_recovery_lease")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub creditor_fiscal_code: String,
    pub lease_holder: Option<Uuid>,
    pub lease_until_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
