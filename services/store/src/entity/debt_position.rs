//! A debt position row.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "debt_position")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub creditor_fiscal_code: String,
    pub request_id: String,
    pub kind: String,
    pub description: String,
    pub state: String,
    pub expires_on: Option<TimeDate>,
    pub debtor_entity_type: String,
    pub debtor_fiscal_code_hash: Vec<u8>,
    pub personal_data_id: Uuid,
    pub tari_tax_year: Option<i32>,
    pub tari_property_ref: Option<String>,
    pub fine_report_number: Option<String>,
    pub fine_violation_date: Option<TimeDate>,
    pub fine_notification_date: Option<TimeDate>,
    pub fine_reduced_amount_cents: Option<i64>,
    pub fine_full_amount_cents: Option<i64>,
    pub fine_increased_amount_cents: Option<i64>,
    pub fine_notification_costs_cents: Option<i64>,
    pub school_pupil_ref: Option<String>,
    pub school_service: Option<String>,
    pub school_year: Option<String>,
    pub school_month: Option<String>,
    pub version: i64,
    pub cancellation_reason: Option<String>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
    pub cancelled_at: Option<TimeDateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
