//! sea-orm entities, one per table. They mirror the migrations; relations are not declared
//! because every query names its join explicitly.

pub mod command;
pub mod creditor;
pub mod creditor_account;
pub mod debt_position;
pub mod installment;
pub mod io_message;
pub mod iuv_sequence;
pub mod ledger_entry;
pub mod ledger_entry_notice;
pub mod ledger_head;
pub mod ledger_line;
pub mod ledger_reported_position;
pub mod outbox_event;
pub mod parked_receipt;
pub mod payment_option;
pub mod personal_data;
pub mod receipt;
pub mod receipt_conflict;
pub mod receipt_transfer;
pub mod recon_credit;
pub mod recon_document;
pub mod recon_fdr_poll;
pub mod recon_flow;
pub mod recon_flow_line;
pub mod recon_label;
pub mod recon_label_change;
pub mod recon_pending_iuv;
pub mod recon_receipt_recovery;
pub mod recon_recovery_lease;
pub mod recon_reversal;
pub mod source_document;
pub mod transfer;
