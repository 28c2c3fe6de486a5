//! Database migrations of incasso, one per file, the same on PostgreSQL and SQLite.
//!
//! Migrations never import the store's entities: each one is a frozen snapshot of the schema
//! at the time it was written, so a later change to an entity cannot rewrite history. Money
//! columns are BIGINT euro cents (`*_cents`) on both engines, because SQLite would store a
//! DECIMAL as a floating-point REAL.

// Iden enums name columns exactly as the tables do (installment.installment_index).
#![allow(clippy::enum_variant_names)]

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_creditor;
mod m20261124_000002_create_iuv_sequence;
mod m20261124_000003_create_personal_data;
mod m20261124_000004_create_debt_position;
mod m20261124_000005_create_payment_option;
mod m20261124_000006_create_installment;
mod m20261124_000007_create_transfer;
mod m20261124_000008_create_command;
mod m20261124_000009_create_ledger;
mod m20261124_000010_create_receipt;
mod m20261202_000011_outbox_lease;
mod m20261202_000012_create_receipt_transfer;
mod m20261202_000013_widen_ledger_receipt_id;
mod m20261203_000014_receipt_inbox;
mod m20261203_000015_fascicolo_citizen_sequence;
mod m20261203_000016_io_message;
mod m20261203_000017_create_reconciliation;
mod m20261203_000018_fdr_poll;
mod m20261203_000019_recon_label_identity;
mod m20261204_000020_ledger_settlement;
mod m20261204_000021_receipt_recovery;
mod m20261204_000022_recon_pending_iuv;
mod m20261205_000023_partial_ledger_indexes;
mod m20261206_000024_partial_label_indexes;
mod m20261206_000025_recon_flow_lines_cents;
mod m20261206_000026_recon_credit_references;
mod m20261206_000027_recon_reversal;
mod m20261206_000028_ledger_reported_position;
mod m20261206_000029_recon_flow_line_by_flow_key;
mod m20261206_000030_recon_label_change_subject_hash;
mod m20261207_000031_recon_label_composed_flow;
mod m20261207_000032_recon_flow_plain_keys_unwritten;
mod m20261207_000033_recon_label_change_composed_flow;
mod partial_index;

/// Every migration of incasso, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_creditor::Migration),
            Box::new(m20261124_000002_create_iuv_sequence::Migration),
            Box::new(m20261124_000003_create_personal_data::Migration),
            Box::new(m20261124_000004_create_debt_position::Migration),
            Box::new(m20261124_000005_create_payment_option::Migration),
            Box::new(m20261124_000006_create_installment::Migration),
            Box::new(m20261124_000007_create_transfer::Migration),
            Box::new(m20261124_000008_create_command::Migration),
            Box::new(m20261124_000009_create_ledger::Migration),
            Box::new(m20261124_000010_create_receipt::Migration),
            Box::new(m20261202_000011_outbox_lease::Migration),
            Box::new(m20261202_000012_create_receipt_transfer::Migration),
            Box::new(m20261202_000013_widen_ledger_receipt_id::Migration),
            Box::new(m20261203_000014_receipt_inbox::Migration),
            Box::new(m20261203_000015_fascicolo_citizen_sequence::Migration),
            Box::new(m20261203_000016_io_message::Migration),
            Box::new(m20261203_000017_create_reconciliation::Migration),
            Box::new(m20261203_000018_fdr_poll::Migration),
            Box::new(m20261203_000019_recon_label_identity::Migration),
            Box::new(m20261204_000020_ledger_settlement::Migration),
            Box::new(m20261204_000021_receipt_recovery::Migration),
            Box::new(m20261204_000022_recon_pending_iuv::Migration),
            Box::new(m20261205_000023_partial_ledger_indexes::Migration),
            Box::new(m20261206_000024_partial_label_indexes::Migration),
            Box::new(m20261206_000025_recon_flow_lines_cents::Migration),
            Box::new(m20261206_000026_recon_credit_references::Migration),
            Box::new(m20261206_000027_recon_reversal::Migration),
            Box::new(m20261206_000028_ledger_reported_position::Migration),
            Box::new(m20261206_000029_recon_flow_line_by_flow_key::Migration),
            Box::new(m20261206_000030_recon_label_change_subject_hash::Migration),
            Box::new(m20261207_000031_recon_label_composed_flow::Migration),
            Box::new(m20261207_000032_recon_flow_plain_keys_unwritten::Migration),
            Box::new(m20261207_000033_recon_label_change_composed_flow::Migration),
        ]
    }
}
