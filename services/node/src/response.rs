//! Writing paForNode responses exactly as the Node parses them: the wrapper element qualified,
//! every child unqualified, amounts as `\d+\.\d{2}`, texts cut to their XSD lengths on purpose
//! (a too-long name would make the Node reject the whole answer), and on OK every element the
//! Node requires even where the XSD says optional.

use std::fmt::Write;

use crate::message::{Operation, PA_FOR_NODE_NS, SOAP_ENVELOPE_NS};
use crate::xml::escape;

/// The creditor-side fault codes incasso answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultCode {
    /// Request not valid against the XSD.
    SintassiXsd,
    /// Request not parseable.
    SintassiExtraXsd,
    /// idPA (or the QR code's creditor) is not served here.
    IdDominioErrato,
    /// idBrokerPA is not ours.
    IdIntermediarioErrato,
    /// idStation is not ours.
    StazioneIntErrata,
    /// Unknown notice.
    PagamentoSconosciuto,
    /// Already paid (or another option was).
    PagamentoDuplicato,
    /// Expired.
    PagamentoScaduto,
    /// Cancelled.
    PagamentoAnnullato,
    /// A semantic error.
    Semantica,
    /// A transient failure: the Node should retry.
    SystemError,
}

impl FaultCode {
    /// Every code incasso answers with.
    pub const ALL: [Self; 11] = [
        Self::SintassiXsd,
        Self::SintassiExtraXsd,
        Self::IdDominioErrato,
        Self::IdIntermediarioErrato,
        Self::StazioneIntErrata,
        Self::PagamentoSconosciuto,
        Self::PagamentoDuplicato,
        Self::PagamentoScaduto,
        Self::PagamentoAnnullato,
        Self::Semantica,
        Self::SystemError,
    ];

    /// The faultCode.
    pub fn code(self) -> &'static str {
        match self {
            Self::SintassiXsd => "PAA_SINTASSI_XSD",
            Self::SintassiExtraXsd => "PAA_SINTASSI_EXTRAXSD",
            Self::IdDominioErrato => "PAA_ID_DOMINIO_ERRATO",
            Self::IdIntermediarioErrato => "PAA_ID_INTERMEDIARIO_ERRATO",
            Self::StazioneIntErrata => "PAA_STAZIONE_INT_ERRATA",
            Self::PagamentoSconosciuto => "PAA_PAGAMENTO_SCONOSCIUTO",
            Self::PagamentoDuplicato => "PAA_PAGAMENTO_DUPLICATO",
            Self::PagamentoScaduto => "PAA_PAGAMENTO_SCADUTO",
            Self::PagamentoAnnullato => "PAA_PAGAMENTO_ANNULLATO",
            Self::Semantica => "PAA_SEMANTICA",
            Self::SystemError => "PAA_SYSTEM_ERROR",
        }
    }

    /// The faultString (the Node does not check it; it is for people reading logs).
    pub fn text(self) -> &'static str {
        match self {
            Self::SintassiXsd => "Errore di sintassi XSD",
            Self::SintassiExtraXsd => "Errore di sintassi extra XSD",
            Self::IdDominioErrato => "Identificativo dominio errato",
            Self::IdIntermediarioErrato => "Identificativo intermediario errato",
            Self::StazioneIntErrata => "Stazione intermediario errata",
            Self::PagamentoSconosciuto => {
                "Pagamento in attesa risulta sconosciuto all'Ente Creditore"
            }
            Self::PagamentoDuplicato => "Pagamento in attesa risulta concluso all'Ente Creditore",
            Self::PagamentoScaduto => "Pagamento in attesa risulta scaduto all'Ente Creditore",
            Self::PagamentoAnnullato => "Pagamento in attesa risulta annullato all'Ente Creditore",
            Self::Semantica => "Errore semantico",
            Self::SystemError => "Errore generico",
        }
    }
}

/// A KO answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The code.
    pub code: FaultCode,
    /// Details for people; never personal data.
    pub description: String,
    /// The creditor the fault is about (idPA), as the Node expects.
    pub id: String,
}

/// The one option a verify answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOptionView {
    /// The amount today, cents.
    pub amount_cents: i64,
    /// The due date, YYYY-MM-DD.
    pub due_date: String,
    /// A description of the option.
    pub detail_description: String,
    /// True when every transfer can be credited to a postal account.
    pub all_ccp: bool,
}

/// A verify answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyView {
    /// The option.
    pub option: PaymentOptionView,
    /// Subject.
    pub payment_description: String,
    /// Creditor.
    pub fiscal_code_pa: String,
    /// Creditor name.
    pub company_name: String,
}

/// A transfer of an activation answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferView {
    /// 1..5.
    pub id_transfer: usize,
    /// Cents.
    pub amount_cents: i64,
    /// Beneficiary.
    pub fiscal_code_pa: String,
    /// Beneficiary name (V2 only; omitted when unknown, as the XSD allows).
    pub company_name: Option<String>,
    /// Account.
    pub iban: String,
    /// Causale.
    pub remittance_information: String,
    /// Taxonomy.
    pub transfer_category: String,
    /// Metadata entries.
    pub metadata: Vec<(String, String)>,
}

/// An activation answer's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    /// The IUV.
    pub creditor_reference_id: String,
    /// Cents.
    pub payment_amount_cents: i64,
    /// YYYY-MM-DD.
    pub due_date: String,
    /// Subject.
    pub description: String,
    /// Creditor name.
    pub company_name: String,
    /// F or G.
    pub debtor_type: String,
    /// Debtor's fiscal code (or ANONIMO).
    pub debtor_code: String,
    /// Debtor's name.
    pub debtor_name: String,
    /// Debtor's e-mail.
    pub debtor_email: Option<String>,
    /// 1..5 transfers.
    pub transfers: Vec<TransferView>,
}

/// Cuts `text` to `max` characters (XSD lengths count characters, so a multi-byte character
/// is never split), dropping those XML 1.0 does not allow in a document (control characters
/// other than tab and line breaks, U+FFFE, U+FFFF), which would make the answer unreadable.
pub fn cut(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| allowed_in_xml(*c))
        .take(max)
        .collect()
}

fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn amount(cents: i64) -> String {
    incasso_domain::money::format_st_amount(cents).unwrap_or_else(|_| "0.00".to_owned())
}

/// Accumulates a response body.
struct Body {
    out: String,
}

impl Body {
    fn new(operation: Operation) -> Self {
        let mut out = String::with_capacity(2048);
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <soapenv:Envelope xmlns:soapenv=\"{SOAP_ENVELOPE_NS}\" xmlns:paf=\"{PA_FOR_NODE_NS}\">\
             <soapenv:Header/><soapenv:Body><paf:{}>",
            operation.response_element()
        );
        Self { out }
    }

    fn open(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>");
        self
    }

    fn close(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.out, "</{name}>");
        self
    }

    /// A leaf whose text incasso writes itself (codes, amounts, dates): escaped only.
    fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>{}</{name}>", escape(text));
        self
    }

    /// A mandatory text of 1..`max` characters: cut before escaping (so an entity is never
    /// cut in half), and never empty, which the XSD's minLength 1 would refuse: callers give
    /// a real fallback, and "-" is only the last resort.
    fn text(&mut self, name: &str, text: &str, max: usize) -> &mut Self {
        let text = cut(text, max);
        self.leaf(name, if text.trim().is_empty() { "-" } else { &text })
    }

    /// An optional text: omitted when there is nothing to say.
    fn optional_text(&mut self, name: &str, text: Option<&str>, max: usize) -> &mut Self {
        let text = cut(text.unwrap_or_default(), max);
        if !text.trim().is_empty() {
            self.leaf(name, &text);
        }
        self
    }

    fn finish(mut self, operation: Operation) -> String {
        let _ = write!(
            self.out,
            "</paf:{}></soapenv:Body></soapenv:Envelope>",
            operation.response_element()
        );
        self.out
    }
}

/// A KO response.
pub fn ko(operation: Operation, fault: &Fault) -> String {
    let mut body = Body::new(operation);
    body.leaf("outcome", "KO")
        .open("fault")
        .leaf("faultCode", fault.code.code())
        .leaf("faultString", fault.code.text())
        .text("id", if fault.id.is_empty() { "-" } else { &fault.id }, 256)
        .text("description", &fault.description, 1024)
        .close("fault");
    body.finish(operation)
}

/// An OK verify response.
pub fn verify_ok(view: &VerifyView) -> String {
    let operation = Operation::VerifyPaymentNotice;
    let mut body = Body::new(operation);
    body.leaf("outcome", "OK")
        .open("paymentList")
        .open("paymentOptionDescription")
        .leaf("amount", &amount(view.option.amount_cents))
        .leaf("options", "EQ")
        .leaf("dueDate", &view.option.due_date)
        .optional_text(
            "detailDescription",
            Some(&view.option.detail_description),
            140,
        )
        .leaf("allCCP", if view.option.all_ccp { "true" } else { "false" })
        .close("paymentOptionDescription")
        .close("paymentList")
        .text("paymentDescription", &view.payment_description, 140)
        .leaf("fiscalCodePA", &view.fiscal_code_pa)
        .text("companyName", &view.company_name, 140);
    body.finish(operation)
}

/// An OK activation response, V1 or V2.
pub fn get_payment_ok(operation: Operation, view: &PaymentView) -> String {
    let v2 = operation == Operation::GetPaymentV2;
    let mut body = Body::new(operation);
    body.leaf("outcome", "OK")
        .open("data")
        .text("creditorReferenceId", &view.creditor_reference_id, 35)
        .leaf("paymentAmount", &amount(view.payment_amount_cents))
        .leaf("dueDate", &view.due_date)
        .text("description", &view.description, 140)
        .text("companyName", &view.company_name, 140)
        .open("debtor")
        .open("uniqueIdentifier")
        .leaf("entityUniqueIdentifierType", &view.debtor_type)
        .text("entityUniqueIdentifierValue", &view.debtor_code, 16)
        .close("uniqueIdentifier")
        .text("fullName", &view.debtor_name, 70);
    body.optional_text("e-mail", view.debtor_email.as_deref(), 256);
    body.close("debtor").open("transferList");
    for transfer in &view.transfers {
        body.open("transfer")
            .leaf("idTransfer", &transfer.id_transfer.to_string())
            .leaf("transferAmount", &amount(transfer.amount_cents))
            .leaf("fiscalCodePA", &transfer.fiscal_code_pa);
        if v2 {
            body.optional_text("companyName", transfer.company_name.as_deref(), 140);
        }
        body.text("IBAN", &transfer.iban, 35)
            .text(
                "remittanceInformation",
                &transfer.remittance_information,
                140,
            )
            .text("transferCategory", &transfer.transfer_category, 140);
        if !transfer.metadata.is_empty() {
            body.open("metadata");
            for (key, value) in transfer.metadata.iter().take(15) {
                body.open("mapEntry")
                    .text("key", key, 140)
                    .text("value", value, 140)
                    .close("mapEntry");
            }
            body.close("metadata");
        }
        body.close("transfer");
    }
    body.close("transferList").close("data");
    body.finish(operation)
}

/// An OK receipt acknowledgement.
pub fn send_rt_ok(operation: Operation) -> String {
    let mut body = Body::new(operation);
    body.leaf("outcome", "OK");
    body.finish(operation)
}

/// A SOAP 1.1 Fault (`soapenv:Client`), for a call that no paForNode response can answer: a
/// message so broken that no operation can be told from it, another path or HTTP method.
/// The faultstring starts with the PAA_ code, for whoever reads the Node's logs.
pub fn soap_fault(code: FaultCode, description: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"{SOAP_ENVELOPE_NS}\"><soapenv:Body><soapenv:Fault>\
         <faultcode>soapenv:Client</faultcode><faultstring>{}: {}</faultstring>\
         </soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        code.code(),
        escape(&cut(description, 1024))
    )
}
