//! One change of a subject's label, with the evidence that caused it.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_label_change")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub creditor_fiscal_code: String,
    pub subject_key: String,
    pub label: Option<String>,
    pub labels: String,
    pub treasury_state: Option<String>,
    pub previous_label: Option<String>,
    pub causes: String,
    pub changed_at: TimeDateTimeWithTimeZone,
    /// The flow the key's label was composed with from this change on (migration 33).
    pub composed_flow_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
