//! The PagoPA side of incasso: the `paForNode` SOAP endpoint the PagoPA Node calls to verify
//! a notice, activate a payment and deliver receipts, and the parsers of the PSPs' reporting
//! flows and the treasury statements. It starts empty: the foundation issue only reserves its
//! place in the dependency graph (domain <- store <- node <- server).

mod call_record;
pub mod http;
pub mod message;
pub mod response;
pub mod service;
pub mod xml;
