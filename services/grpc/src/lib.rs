//! The gRPC transport of incasso: the generated `incasso.v1` types, the service
//! implementations (notices, ledger, receipts, the citizen's payments, reconciliation), the
//! one conversion layer between proto and domain ([`convert`]), the one mapping from use-case
//! errors to gRPC statuses ([`status`]) and the layer that gives an over-size request the
//! status gRPC prescribes ([`message_size`]) and the access control around every call
//! ([`access`]).

pub mod access;
pub mod citizen_service;
pub mod convert;
pub mod ledger_service;
pub mod message_size;
pub mod notice_service;
pub mod receipt_service;
pub mod reconciliation_service;
pub mod status;

pub mod pb {
    //! Code generated from `proto/incasso/v1`.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("incasso.v1");

    /// The encoded descriptor set of every incasso.v1 file, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("incasso_descriptor");
}

pub use citizen_service::CitizenPaymentsApi;
pub use ledger_service::LedgerApi;
pub use notice_service::NoticeApi;
pub use receipt_service::ReceiptApi;
pub use reconciliation_service::ReconciliationApi;
