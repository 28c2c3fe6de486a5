//! A receipt delivered by the PagoPA Node.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "receipt")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub creditor_fiscal_code: String,
    pub iuv: String,
    pub receipt_id: String,
    pub notice_number: String,
    pub receiving_creditor: String,
    pub content_sha256: String,
    pub source_document_id: Uuid,
    pub primitive: String,
    pub psp_id: String,
    pub channel_id: String,
    pub payment_amount_cents: i64,
    pub fee_cents: Option<i64>,
    pub payment_date_time: Option<String>,
    pub paid_at: Option<TimeDateTimeWithTimeZone>,
    pub stand_in: bool,
    pub classification: String,
    pub flags: String,
    pub debt_position_id: Option<Uuid>,
    pub installment_id: Option<Uuid>,
    pub received_at: TimeDateTimeWithTimeZone,
    /// Booked from PagoPA's biz-events API rather than delivered by the Node.
    pub recovered: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
