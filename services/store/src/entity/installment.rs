//! An installment (notice) row.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "installment")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub debt_position_id: Uuid,
    pub payment_option_id: Uuid,
    pub option_index: i16,
    pub installment_index: i16,
    pub creditor_fiscal_code: String,
    pub notice_number: String,
    pub iuv: String,
    pub amount_cents: i64,
    pub due_date: TimeDate,
    pub expiry_date: Option<TimeDate>,
    pub state: String,
    pub paid_at: Option<TimeDateTimeWithTimeZone>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
