//! The current assessment of one reconciliation subject.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_label")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub creditor_fiscal_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject_key: String,
    pub subject_kind: String,
    pub iuv: Option<String>,
    pub receipt_id: Option<String>,
    pub id_transfer: Option<i16>,
    pub flow_id: Option<String>,
    pub credit_id: Option<String>,
    pub label: Option<String>,
    pub labels: String,
    pub treasury_state: Option<String>,
    pub assessment: String,
    pub updated_at: TimeDateTimeWithTimeZone,
    /// The flow a transfer key's label is composed with when read (migration 31).
    pub composed_flow_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
