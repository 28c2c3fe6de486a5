//! The paForNode requests as typed values: the SOAP 1.1 envelope is unwrapped, the operation
//! is found from the body's wrapper element, and every field is checked against the XSD as it
//! is read (missing, repeated, unknown, namespace-qualified, too long, wrong pattern), so that
//! the handlers only ever see valid requests and every refusal names the field. This module
//! unwraps the envelope and dispatches on the operation (`operation`); the XSD-shaped field
//! reader is `fields`, verify and activation requests are `payment`, receipts `receipt`.

mod fields;
mod operation;
mod payment;
mod receipt;
#[cfg(test)]
mod test_support;

use std::cell::RefCell;

use crate::xml::{self, Element, Limits, XmlError};
use fields::{Fields, attribute_name, check_payload_attributes};

pub use operation::Operation;
pub use payment::{GetPaymentRequest, Header, QrCode, TransferType, VerifyRequest};
pub use receipt::{MapEntry, Receipt, ReceiptTransfer, SendRtRequest, Subject};

/// The SOAP 1.1 envelope namespace.
pub const SOAP_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The paForNode payload namespace.
pub const PA_FOR_NODE_NS: &str = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd";
/// The XML Schema instance namespace (`xsi:`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The SOAP 1.1 envelope schema lets `Envelope` and `Header` carry any attribute qualified
/// with a namespace other than the envelope's own (`##other`), and nothing else.
fn check_envelope_attributes(element: &Element, path: &str) -> Result<(), SyntaxError> {
    for attribute in &element.attributes {
        if matches!(
            attribute.namespace.as_deref(),
            None | Some(SOAP_ENVELOPE_NS)
        ) {
            return Err(SyntaxError::invalid(
                path,
                format!(
                    "attribute {} is not allowed: only attributes in another namespace than the envelope's are",
                    attribute_name(attribute)
                ),
            ));
        }
    }
    Ok(())
}

/// Why a request was refused before any business rule ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// Not parseable at all (not XML, not UTF-8, a DTD, an unknown entity, a limit): the
    /// fault is PAA_SINTASSI_EXTRAXSD.
    Unparseable(String),
    /// Well-formed but not valid against the schema: PAA_SINTASSI_XSD.
    Invalid {
        /// Path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl SyntaxError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The description for the fault.
    pub fn description(&self) -> String {
        match self {
            Self::Unparseable(message) => message.clone(),
            Self::Invalid { field, message } => format!("{field}: {message}"),
        }
    }
}

impl From<XmlError> for SyntaxError {
    fn from(error: XmlError) -> Self {
        Self::Unparseable(error.to_string())
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// paVerifyPaymentNotice.
    Verify(VerifyRequest),
    /// paGetPayment(V2).
    GetPayment(GetPaymentRequest, Operation),
    /// paSendRT(V2).
    SendRt(Box<SendRtRequest>, Operation),
    /// paDemandPaymentNotice.
    Demand(Header),
}

impl Request {
    /// The operation.
    pub fn operation(&self) -> Operation {
        match self {
            Self::Verify(_) => Operation::VerifyPaymentNotice,
            Self::GetPayment(_, op) | Self::SendRt(_, op) => *op,
            Self::Demand(_) => Operation::DemandPaymentNotice,
        }
    }

    /// The caller's header.
    pub fn header(&self) -> &Header {
        match self {
            Self::Verify(r) => &r.header,
            Self::GetPayment(r, _) => &r.header,
            Self::SendRt(r, _) => &r.header,
            Self::Demand(h) => h,
        }
    }
}

/// What can be read from a message that may not be a valid request: the operation its
/// wrapper names and the identifiers a fault or a log line should carry. Used to answer a
/// refused request with the right wrapper and the creditor's `id`, and to fill the span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peek {
    /// The operation named by the body's wrapper element, whatever its namespace.
    pub operation: Option<Operation>,
    /// `idPA`, when present, unqualified and 1..35 characters as the XSD requires.
    pub id_pa: Option<String>,
    /// `qrCode.noticeNumber` or `receipt.noticeNumber`, when 18 digits.
    pub notice_number: Option<String>,
    /// `receipt.creditorReferenceId`, when 1..35 characters.
    pub iuv: Option<String>,
}

fn child<'a>(element: &'a Element, name: &str) -> Option<&'a Element> {
    element
        .children
        .iter()
        .find(|c| c.name == name && c.namespace.is_none())
}

fn leaf_text(element: Option<&Element>, valid: impl Fn(&str) -> bool) -> Option<String> {
    let element = element.filter(|e| e.children.is_empty())?;
    let text = element.text.trim();
    valid(text).then(|| text.to_owned())
}

/// Reads what it can from `body` (see [`Peek`]); nothing when it is not well-formed.
pub fn peek(body: &[u8]) -> Peek {
    let Ok(root) = xml::parse(body, Limits::default()) else {
        return Peek::default();
    };
    let Some(wrapper) = root
        .children
        .iter()
        .find(|c| c.name == "Body")
        .and_then(|b| b.children.first())
    else {
        return Peek::default();
    };
    let within = |min: usize, max: usize| move |t: &str| (min..=max).contains(&t.chars().count());
    let notice = |t: &str| t.len() == 18 && t.bytes().all(|b| b.is_ascii_digit());
    let receipt = child(wrapper, "receipt");
    Peek {
        operation: Operation::from_request_element(&wrapper.name),
        id_pa: leaf_text(child(wrapper, "idPA"), within(1, 35)),
        notice_number: leaf_text(
            child(wrapper, "qrCode")
                .or(receipt)
                .and_then(|e| child(e, "noticeNumber")),
            notice,
        ),
        iuv: leaf_text(
            receipt.and_then(|r| child(r, "creditorReferenceId")),
            within(1, 35),
        ),
    }
}

/// What the body names, for choosing the response wrapper even when the request is invalid.
pub fn operation_of(body: &[u8]) -> Option<Operation> {
    peek(body).operation
}

/// Parses a whole SOAP message.
pub fn parse_request(bytes: &[u8], limits: Limits) -> Result<Request, SyntaxError> {
    let root = xml::parse(bytes, limits)?;
    if root.name != "Envelope" || root.namespace.as_deref() != Some(SOAP_ENVELOPE_NS) {
        return Err(SyntaxError::invalid(
            "Envelope",
            format!("expected a SOAP 1.1 Envelope in namespace {SOAP_ENVELOPE_NS}"),
        ));
    }
    check_envelope_attributes(&root, "Envelope")?;
    let mut body = None;
    for child in &root.children {
        match (child.name.as_str(), child.namespace.as_deref()) {
            // Header entries are the sender's business (processContents lax): not read.
            ("Header", Some(SOAP_ENVELOPE_NS)) if body.is_none() => {
                check_envelope_attributes(child, "Envelope.Header")?;
            }
            // Body allows any attribute (##any).
            ("Body", Some(SOAP_ENVELOPE_NS)) if body.is_none() => body = Some(child),
            _ => {
                return Err(SyntaxError::invalid(
                    format!("Envelope.{}", child.name),
                    "unexpected element",
                ));
            }
        }
    }
    let body = body.ok_or_else(|| SyntaxError::invalid("Envelope.Body", "missing"))?;
    let [wrapper] = body.children.as_slice() else {
        return Err(SyntaxError::invalid(
            "Body",
            "must hold exactly one request element",
        ));
    };
    let operation = Operation::from_request_element(&wrapper.name).ok_or_else(|| {
        SyntaxError::invalid(format!("Body.{}", wrapper.name), "not a paForNode request")
    })?;
    if wrapper.namespace.as_deref() != Some(PA_FOR_NODE_NS) {
        return Err(SyntaxError::invalid(
            wrapper.name.clone(),
            format!("must be in namespace {PA_FOR_NODE_NS}"),
        ));
    }
    check_payload_attributes(wrapper, &wrapper.name)?;
    let receipt_delivery = matches!(operation, Operation::SendRt | Operation::SendRtV2);
    let unknown = RefCell::new(Vec::new());
    let mut fields = if receipt_delivery {
        Fields::lenient(wrapper, &wrapper.name, &unknown)?
    } else {
        Fields::new(wrapper, &wrapper.name)?
    };
    let head = payment::header(&mut fields)?;
    let request = match operation {
        Operation::VerifyPaymentNotice => Request::Verify(VerifyRequest {
            header: head,
            qr_code: payment::qr_code(&mut fields)?,
        }),
        Operation::GetPayment | Operation::GetPaymentV2 => {
            payment::get_payment(&mut fields, head, operation)?
        }
        Operation::SendRt | Operation::SendRtV2 => receipt::send_rt(&mut fields, head, operation)?,
        Operation::DemandPaymentNotice => {
            fields.text("idServizio", 5, 5)?;
            fields.text("idSoggettoServizio", 5, 5)?;
            fields.base64("datiSpecificiServizioRequest")?;
            Request::Demand(head)
        }
    };
    fields.finish()?;
    let mut request = request;
    if let Request::SendRt(send, _) = &mut request {
        let later = unknown.into_inner();
        send.unknown_elements = later.iter().map(|f| f.path.clone()).collect();
        send.receipt.later_version_fields = later;
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn peek_reads_what_an_invalid_request_names() {
        let broken = receipt_v2("Retta", 6, "");
        assert!(parse_request(broken.as_bytes(), Limits::default()).is_err());
        let peek = peek(broken.as_bytes());
        assert_eq!(peek.operation, Some(Operation::SendRtV2));
        assert_eq!(peek.id_pa.as_deref(), Some("01199250158"));
        assert_eq!(peek.notice_number.as_deref(), Some("312000000001234587"));
        assert_eq!(peek.iuv.as_deref(), Some("12000000001234587"));
        let too_long = envelope(
            "paVerifyPaymentNoticeReq",
            &format!("<idPA>{}</idPA>{QR}", "1".repeat(36)),
        );
        let peek = super::peek(too_long.as_bytes());
        assert_eq!(
            peek.id_pa, None,
            "an idPA the XSD refuses is no creditor to name"
        );
        assert_eq!(peek.notice_number.as_deref(), Some("312000000001234587"));
        assert_eq!(super::peek(b"<not xml"), Peek::default());
    }

    #[test]
    fn a_valid_verify_parses() {
        let Ok(Request::Verify(request)) = verify(&format!("{HEADER}{QR}")) else {
            panic!("a valid verify must parse");
        };
        assert_eq!(request.header.id_pa, "01199250158");
        assert_eq!(request.qr_code.notice_number, "312000000001234587");
    }

    #[test]
    fn attributes_real_senders_use_are_accepted() {
        let xsi = format!("xmlns:xsi=\"{XSI_NS}\"");
        let hinted = envelope(
            "paVerifyPaymentNoticeReq",
            &format!(
                "{}{QR}",
                HEADER.replace(
                    "<idPA>",
                    &format!("<idPA {xsi} xsi:schemaLocation=\"{PA_FOR_NODE_NS} paForNode.xsd\">")
                )
            ),
        )
        // Envelope and Header: attributes of other namespaces; Body: any attribute;
        // header entries are not read at all.
        .replace(
            "<soapenv:Envelope ",
            "<soapenv:Envelope xmlns:o=\"urn:o\" o:x=\"1\" ",
        )
        .replace(
            "<soapenv:Body>",
            "<soapenv:Header o:y=\"2\"><o:trace soapenv:mustUnderstand=\"0\" id=\"t\"/></soapenv:Header>\
             <soapenv:Body id=\"body\">",
        );
        assert!(
            matches!(
                parse_request(hinted.as_bytes(), Limits::default()),
                Ok(Request::Verify(_))
            ),
            "{:?}",
            parse_request(hinted.as_bytes(), Limits::default())
        );
        for (from, to, field) in [
            (
                "<soapenv:Envelope ",
                "<soapenv:Envelope foo=\"1\" ",
                "Envelope",
            ),
            (
                "<soapenv:Envelope ",
                "<soapenv:Envelope soapenv:encodingStyle=\"urn:x\" ",
                "Envelope",
            ),
            (
                "<soapenv:Body>",
                "<soapenv:Header foo=\"1\"/><soapenv:Body>",
                "Envelope.Header",
            ),
        ] {
            let xml = envelope("paVerifyPaymentNoticeReq", &format!("{HEADER}{QR}"))
                .replacen(from, to, 1);
            let (got, message) = field_error(parse_request(xml.as_bytes(), Limits::default()));
            assert_eq!(got, field, "{to}: {message}");
        }
    }

    #[test]
    fn a_malformed_attribute_list_is_unparseable() {
        let xml = envelope("paVerifyPaymentNoticeReq", &format!("{HEADER}{QR}"))
            .replace("<idPA>", "<idPA a=1 & <<>");
        assert!(matches!(
            parse_request(xml.as_bytes(), Limits::default()),
            Err(SyntaxError::Unparseable(_))
        ));
    }

    #[test]
    fn a_demand_is_read_to_its_schema() {
        let demand = |servizio: &str, dati: &str| {
            parse_request(
                envelope(
                    "paDemandPaymentNoticeRequest",
                    &format!(
                        "{HEADER}<idServizio>{servizio}</idServizio>\
                         <idSoggettoServizio>00001</idSoggettoServizio>\
                         <datiSpecificiServizioRequest>{dati}</datiSpecificiServizioRequest>"
                    ),
                )
                .as_bytes(),
                Limits::default(),
            )
        };
        for dati in [
            "PHNlcnZpemlvLz4=",
            "PHNl\n  cnZp emlvLz4=",
            "",
            "YQ==",
            "YWI=",
        ] {
            let Ok(Request::Demand(header)) = demand("00042", dati) else {
                panic!("{dati:?}: {:?}", demand("00042", dati));
            };
            assert_eq!(header.id_pa, "01199250158");
        }
        for dati in ["<x/>", "YQ=", "Y===", "YQ==YQ==", "Y$=="] {
            let (field, _) = field_error(demand("00042", dati));
            assert_eq!(
                field, "paDemandPaymentNoticeRequest.datiSpecificiServizioRequest",
                "{dati}"
            );
        }
        let (field, _) = field_error(demand("0042", "YQ=="));
        assert_eq!(field, "paDemandPaymentNoticeRequest.idServizio");
    }
}
