//! A journal entry.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entry")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub id: Uuid,
    pub event_type: String,
    pub creditor_fiscal_code: String,
    pub kind: Option<String>,
    pub description: String,
    pub debt_position_id: Option<Uuid>,
    pub receipt_id: Option<String>,
    pub reporting_flow_id: Option<String>,
    pub treasury_line_id: Option<String>,
    pub corrects_sequence: Option<i64>,
    pub source_document_id: Option<Uuid>,
    pub source_document_sha256: Option<Vec<u8>>,
    pub recorded_at: TimeDateTimeWithTimeZone,
    pub recorded_micros: i64,
    pub previous_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub body: Vec<u8>,
    pub reporting_flow_revision: Option<i32>,
    pub posting_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
