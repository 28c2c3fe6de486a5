//! The evidence formats reconciliation imports, read as streams: PagoPA's reporting flow
//! (`FlussoRiversamento` XML, and the same flow as the FdR REST API serves it in JSON), the bank's ISO 20022 statements and notifications (camt.053 and
//! camt.054, versions .001.02, .04 and .08) and the Tesoriere's OPI giornale di cassa (1.4,
//! 1.6.1, 1.7.1, 1.8). The format is detected from the document's root element and namespace.
//! Each reader hands its records to a [`Sink`] one at a time, so memory does not grow with
//! the file, and refuses a malformed document with a [`FormatError`] that names the file, the
//! line and the element. What the records mean is the domain's business
//! (`incasso_domain::reconciliation`); what is stored, and in which transaction, the store's.

mod camt;
mod charset;
mod document;
mod error;
mod fdr_rest;
mod fdr_xml;
mod opi;
#[cfg(feature = "test-support")]
pub mod testing;
mod values;
mod xml;

pub use document::{
    CamtVersion, Collected, CreditRecord, DocumentKind, FlowHeader, OpiVersion, ReversalRecord,
    Sink, TreasuryAccount, read_document, read_file,
};
pub use error::{FormatError, ReadError};
pub use fdr_rest::{fdr_rest_document_name, json_amount_cents, read_fdr_rest};
pub use fdr_xml::NAMESPACE as FDR_NAMESPACE;
