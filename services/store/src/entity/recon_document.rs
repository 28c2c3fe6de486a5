//! An imported reconciliation document, remembered by its content hash.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_document")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub creditor_fiscal_code: String,
    pub content_sha256: String,
    pub kind: String,
    pub file_name: String,
    pub coverage_date: Option<TimeDate>,
    pub imported_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
