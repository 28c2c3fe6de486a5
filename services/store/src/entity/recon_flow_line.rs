//! One line (datiSingoliPagamenti) of a flow revision.
#![allow(missing_docs)]
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recon_flow_line")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub flow_row_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line_number: i32,
    pub iuv: String,
    pub receipt_id: String,
    pub id_transfer: i16,
    pub amount_cents: i64,
    pub outcome: i16,
    pub paid_on: TimeDate,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
