//! An event written with a business change, for a relay to deliver.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub topic: String,
    pub aggregate_id: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    /// Microseconds since the epoch.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub delivered_at: Option<TimeDateTimeWithTimeZone>,
    /// The token of the claim that holds (or last held) the event.
    pub lease_token: Option<Uuid>,
    /// Where the event queues behind its aggregate's others: microseconds since the epoch.
    pub order_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
