//! The pure domain of `incasso`, the Comune di Milano's creditor-side PagoPA service.
//!
//! Everything here is synchronous and free of I/O: money as integer euro cents, notice numbers
//! (NAV) and IUVs, Italian fiscal codes, IBANs, taxonomy codes, the traffic-fine amount schedule
//! and the debt-position model with its validation and state machine. Time and identifiers come
//! in as arguments, so every rule is deterministic and property-testable. Crates further out
//! (store, grpc, node, server) depend on this one; it depends on none of them.

pub mod calendar;
pub mod citizen;
pub mod creditor;
pub mod debt_position;
pub mod fiscal_code;
pub mod iban;
pub mod io_message;
pub mod ledger;
pub mod money;
pub mod notice_number;
pub mod receipt;
pub mod reconciliation;
pub mod rome_time;
pub mod taxonomy;
pub mod traffic_fine;
pub mod validation;
