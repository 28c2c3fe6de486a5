//! The last outcome of recovering one missing receipt (creditor, IUV, IUR) from biz-events.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_receipt_recovery")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub creditor_fiscal_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub iuv: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub receipt_id: String,
    pub state: String,
    pub attempts: i32,
    pub first_attempt_at: TimeDateTimeWithTimeZone,
    pub last_attempt_at: TimeDateTimeWithTimeZone,
    pub next_attempt_micros: i64,
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
