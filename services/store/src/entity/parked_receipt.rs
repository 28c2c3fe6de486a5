//! A receipt whose booking is parked: why, how often it was tried, when it is tried next, and
//! its facts sealed with the personal-data key.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "parked_receipt")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub receipt_row_id: Uuid,
    pub reason: String,
    pub attempts: i32,
    pub next_attempt_micros: i64,
    pub parked_at: TimeDateTimeWithTimeZone,
    pub last_attempt_at: Option<TimeDateTimeWithTimeZone>,
    pub booked_at: Option<TimeDateTimeWithTimeZone>,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
