//! One revision of a reporting flow.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_flow")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub creditor_fiscal_code: String,
    pub flow_id: String,
    pub revision: i32,
    pub created_at: TimeDateTimeWithTimeZone,
    pub psp_id: String,
    pub psp_name: Option<String>,
    pub trn: String,
    pub regulation_date: TimeDate,
    pub total_cents: i64,
    pub line_count: i64,
    pub document_id: Uuid,
    pub bic: Option<String>,
    /// What the revision's lines add up to (`total_cents` is what its PSP declared).
    pub lines_cents: i64,
    /// Every key of the revision was written composed with its flow (migration 31).
    pub keys_composed: bool,
    /// Its plain keys' labels were not written: they are composed with it when read
    /// (migration 32).
    pub plain_keys_unwritten: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
