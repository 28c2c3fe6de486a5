//! The paForNode requests as typed values: the SOAP 1.1 envelope is unwrapped, the operation
//! is found from the body's wrapper element, and every field is checked against the XSD as it
//! is read (missing, repeated, unknown, namespace-qualified, too long, wrong pattern), so that
//! the handlers only ever see valid requests and every refusal names the field.

use std::cell::RefCell;

use crate::xml::{self, Element, Limits, XmlError};

/// The SOAP 1.1 envelope namespace.
pub const SOAP_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The paForNode payload namespace.
pub const PA_FOR_NODE_NS: &str = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd";
/// The XML Schema instance namespace (`xsi:`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// How an attribute is named in a refusal: its local name, and its namespace when it has
/// one (prefixes are the sender's choice, the namespace is what the schema judges).
fn attribute_name(attribute: &xml::Attribute) -> String {
    match &attribute.namespace {
        Some(namespace) => format!("'{}' (namespace {namespace})", attribute.name),
        None => format!("'{}'", attribute.name),
    }
}

/// The paForNode XSD declares no attribute on any of its elements, so only what every
/// schema processor accepts everywhere is let through: the `xsi:schemaLocation` and
/// `xsi:noNamespaceSchemaLocation` hints. (`xsi:type` and `xsi:nil` are refused: no element
/// is nillable and no type is derived, so they could only say something the XSD refuses.)
fn check_payload_attributes(element: &Element, path: &str) -> Result<(), SyntaxError> {
    for attribute in &element.attributes {
        let hint = attribute.namespace.as_deref() == Some(XSI_NS)
            && matches!(
                attribute.name.as_str(),
                "schemaLocation" | "noNamespaceSchemaLocation"
            );
        if !hint {
            return Err(SyntaxError::invalid(
                path,
                format!(
                    "attribute {} is not allowed: the schema declares no attributes on this element",
                    attribute_name(attribute)
                ),
            ));
        }
    }
    Ok(())
}

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

/// The operations of paForNode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// paVerifyPaymentNotice.
    VerifyPaymentNotice,
    /// paGetPayment.
    GetPayment,
    /// paGetPaymentV2.
    GetPaymentV2,
    /// paSendRT.
    SendRt,
    /// paSendRTV2.
    SendRtV2,
    /// paDemandPaymentNotice.
    DemandPaymentNotice,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 6] = [
        Self::VerifyPaymentNotice,
        Self::GetPayment,
        Self::GetPaymentV2,
        Self::SendRt,
        Self::SendRtV2,
        Self::DemandPaymentNotice,
    ];

    /// The operation name (the SOAPAction).
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyPaymentNotice => "paVerifyPaymentNotice",
            Self::GetPayment => "paGetPayment",
            Self::GetPaymentV2 => "paGetPaymentV2",
            Self::SendRt => "paSendRT",
            Self::SendRtV2 => "paSendRTV2",
            Self::DemandPaymentNotice => "paDemandPaymentNotice",
        }
    }

    /// The request wrapper element (V1 `Req`, V2 `Request`).
    pub fn request_element(self) -> &'static str {
        match self {
            Self::VerifyPaymentNotice => "paVerifyPaymentNoticeReq",
            Self::GetPayment => "paGetPaymentReq",
            Self::GetPaymentV2 => "paGetPaymentV2Request",
            Self::SendRt => "paSendRTReq",
            Self::SendRtV2 => "paSendRTV2Request",
            Self::DemandPaymentNotice => "paDemandPaymentNoticeRequest",
        }
    }

    /// The response wrapper element (V1 `Res`, V2 `Response`).
    pub fn response_element(self) -> &'static str {
        match self {
            Self::VerifyPaymentNotice => "paVerifyPaymentNoticeRes",
            Self::GetPayment => "paGetPaymentRes",
            Self::GetPaymentV2 => "paGetPaymentV2Response",
            Self::SendRt => "paSendRTRes",
            Self::SendRtV2 => "paSendRTV2Response",
            Self::DemandPaymentNotice => "paDemandPaymentNoticeResponse",
        }
    }

    /// The operation a SOAPAction names (quotes and a path prefix tolerated).
    pub fn from_soap_action(action: &str) -> Option<Self> {
        let action = action.trim().trim_matches('"');
        let action = action.rsplit(['/', '#']).next().unwrap_or(action);
        Self::ALL.into_iter().find(|op| op.name() == action)
    }

    fn from_request_element(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.request_element() == name)
    }
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

/// The caller's identification, common to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The creditor (EC) addressed.
    pub id_pa: String,
    /// The intermediary.
    pub id_broker_pa: String,
    /// The station.
    pub id_station: String,
}

/// A notice's QR code: creditor and notice number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrCode {
    /// 11 digits.
    pub fiscal_code: String,
    /// 18 digits.
    pub notice_number: String,
}

/// How the PSP will move the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// Poste: transfer 1 must credit a postal account.
    Postal,
    /// PagoPA touchpoints (V2): postal IBAN in IBANAPPOGGIO metadata.
    PagoPa,
}

/// paVerifyPaymentNotice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// Caller.
    pub header: Header,
    /// Notice.
    pub qr_code: QrCode,
}

/// paGetPayment / paGetPaymentV2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetPaymentRequest {
    /// Caller.
    pub header: Header,
    /// Notice.
    pub qr_code: QrCode,
    /// What the PSP expects, cents.
    pub amount_cents: Option<i64>,
    /// Transfer type asked.
    pub transfer_type: Option<TransferType>,
}

/// A debtor or payer (`ctSubject`). Personal data: its `Debug` prints nothing of it, it is
/// never logged, and the store keeps it only inside the encrypted raw message.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subject {
    /// F (natural person) or G (legal person).
    pub entity_type: String,
    /// Fiscal code, VAT number or `ANONIMO`.
    pub unique_identifier: String,
    /// Name.
    pub full_name: String,
    /// Street.
    pub street_name: Option<String>,
    /// Civic number.
    pub civic_number: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Province or region.
    pub state_province_region: Option<String>,
    /// Country, two letters.
    pub country: Option<String>,
    /// E-mail.
    pub email: Option<String>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subject(..)")
    }
}

/// One `mapEntry` of a `metadata` list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MapEntry {
    /// Key, 1..140 characters.
    pub key: String,
    /// Value, 1..140 characters.
    pub value: String,
}

/// One transfer of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceiptTransfer {
    /// 1..5.
    pub id_transfer: u8,
    /// Cents.
    pub amount_cents: i64,
    /// Beneficiary.
    pub fiscal_code_pa: String,
    /// Beneficiary name (V2).
    pub company_name: Option<String>,
    /// Account credited, or none for a digital stamp.
    pub iban: Option<String>,
    /// The digital stamp (V2 `MBDAttachment`, base64 without whitespace), instead of an IBAN.
    pub stamp: Option<String>,
    /// Causale.
    pub remittance_information: String,
    /// Taxonomy.
    pub transfer_category: String,
    /// The transfer's metadata, in order.
    pub metadata: Vec<MapEntry>,
}

/// A receipt, as paSendRT(V2) carries it: every field of `ctReceipt`/`ctReceiptV2`, so that
/// its [canonical form](Receipt::canonical) covers all of them. Its `Debug` shows the
/// debtor and payer only as `Subject(..)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The payment token.
    pub receipt_id: String,
    /// NAV.
    pub notice_number: String,
    /// The notice's creditor.
    pub fiscal_code: String,
    /// OK or KO.
    pub outcome: String,
    /// IUV.
    pub creditor_reference_id: String,
    /// Cents.
    pub payment_amount_cents: i64,
    /// Subject.
    pub description: String,
    /// Creditor name.
    pub company_name: String,
    /// Creditor office.
    pub office_name: Option<String>,
    /// Who owed the payment.
    pub debtor: Subject,
    /// 1..5 transfers.
    pub transfers: Vec<ReceiptTransfer>,
    /// PSP id.
    pub id_psp: String,
    /// PSP fiscal code.
    pub psp_fiscal_code: Option<String>,
    /// PSP VAT number.
    pub psp_partita_iva: Option<String>,
    /// PSP name.
    pub psp_company_name: String,
    /// Channel.
    pub id_channel: String,
    /// Channel description.
    pub channel_description: String,
    /// Who paid, when the PSP says.
    pub payer: Option<Subject>,
    /// Payment method.
    pub payment_method: Option<String>,
    /// Payment note (V2).
    pub payment_note: Option<String>,
    /// Fee paid by the payer, cents.
    pub fee_cents: Option<i64>,
    /// Fee borne by the creditor, cents (V2).
    pub primary_ci_incurred_fee_cents: Option<i64>,
    /// The PSP's bundle (V2).
    pub id_bundle: Option<String>,
    /// The creditor's bundle (V2).
    pub id_ci_bundle: Option<String>,
    /// When the payment was made, as sent.
    pub payment_date_time: Option<String>,
    /// PSP booking date.
    pub application_date: Option<String>,
    /// Date the PSP must credit by.
    pub transfer_date: Option<String>,
    /// The receipt's metadata (the activation's, echoed), in order.
    pub metadata: Vec<MapEntry>,
    /// Paid in Stand-In (absent means false).
    pub stand_in: bool,
}

impl Receipt {
    /// The canonical form of the receipt: every parsed field, in a fixed order, as JSON.
    /// Two deliveries have the same canonical form exactly when they carry the same
    /// receipt, however the XML was written (whitespace, namespace prefixes, `1` for
    /// `true`, line breaks in base64). It contains the debtor and the payer: hash it with a
    /// key, never store or log it.
    pub fn canonical(&self) -> Vec<u8> {
        #[allow(clippy::expect_used)]
        serde_json::to_vec(self).expect("a receipt always serialises")
    }
}

/// paSendRT / paSendRTV2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRtRequest {
    /// Caller (the receiving creditor).
    pub header: Header,
    /// The receipt.
    pub receipt: Receipt,
    /// The paths of the elements this version does not know (added by a later SANP
    /// version), skipped: names only, for the log.
    pub unknown_elements: Vec<String>,
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

/// Reads the children of one element, each at most once unless asked, refusing
/// namespace-qualified ones. A child no field asks for is refused ([`Fields::finish`]), except
/// in a receipt, where it is noted and skipped: a later SANP version may add fields, and a
/// receipt must never be refused for one.
struct Fields<'a> {
    element: &'a Element,
    path: String,
    taken: Vec<bool>,
    /// Where unknown children are noted (receipts), or `None` when they are refused.
    unknown: Option<&'a RefCell<Vec<String>>>,
}

impl<'a> Fields<'a> {
    /// Strict: unknown children are refused.
    fn new(element: &'a Element, path: &str) -> Result<Self, SyntaxError> {
        Self::with_mode(element, path, None)
    }

    /// Lenient: unknown children, here and in every element read through
    /// [`Fields::within`], are noted in `unknown` by path.
    fn lenient(
        element: &'a Element,
        path: &str,
        unknown: &'a RefCell<Vec<String>>,
    ) -> Result<Self, SyntaxError> {
        Self::with_mode(element, path, Some(unknown))
    }

    /// The fields of a child element, read in the same mode.
    fn within(&self, element: &'a Element, path: &str) -> Result<Self, SyntaxError> {
        Self::with_mode(element, path, self.unknown)
    }

    fn with_mode(
        element: &'a Element,
        path: &str,
        unknown: Option<&'a RefCell<Vec<String>>>,
    ) -> Result<Self, SyntaxError> {
        for child in &element.children {
            if child.namespace.is_some() {
                return Err(SyntaxError::invalid(
                    format!("{path}.{}", child.name),
                    "must not be namespace-qualified (only the wrapper element is)",
                ));
            }
        }
        Ok(Self {
            element,
            path: path.to_owned(),
            taken: vec![false; element.children.len()],
            unknown,
        })
    }

    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// Every child called `name`, each checked for attributes the schema does not allow.
    fn all(&mut self, name: &str) -> Result<Vec<&'a Element>, SyntaxError> {
        let mut found = Vec::new();
        for (i, child) in self.element.children.iter().enumerate() {
            if child.name == name {
                self.taken[i] = true;
                found.push(child);
            }
        }
        for (i, child) in found.iter().enumerate() {
            let path = if found.len() > 1 {
                format!("{}[{i}]", self.field(name))
            } else {
                self.field(name)
            };
            check_payload_attributes(child, &path)?;
        }
        Ok(found)
    }

    fn optional_element(&mut self, name: &str) -> Result<Option<&'a Element>, SyntaxError> {
        let found = self.all(name)?;
        if found.len() > 1 {
            return Err(SyntaxError::invalid(
                self.field(name),
                "appears more than once",
            ));
        }
        Ok(found.into_iter().next())
    }

    fn element(&mut self, name: &str) -> Result<&'a Element, SyntaxError> {
        self.optional_element(name)?
            .ok_or_else(|| SyntaxError::invalid(self.field(name), "missing"))
    }

    fn optional_text(
        &mut self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<String>, SyntaxError> {
        let Some(element) = self.optional_element(name)? else {
            return Ok(None);
        };
        if !element.children.is_empty() {
            return Err(SyntaxError::invalid(
                self.field(name),
                "must hold text, not elements",
            ));
        }
        let text = element.text.trim();
        let chars = text.chars().count();
        if chars < min || chars > max {
            return Err(SyntaxError::invalid(
                self.field(name),
                format!("must be {min} to {max} characters, got {chars}"),
            ));
        }
        Ok(Some(text.to_owned()))
    }

    fn text(&mut self, name: &str, min: usize, max: usize) -> Result<String, SyntaxError> {
        self.optional_text(name, min, max)?
            .ok_or_else(|| SyntaxError::invalid(self.field(name), "missing"))
    }

    fn digits(&mut self, name: &str, length: usize) -> Result<String, SyntaxError> {
        let text = self.text(name, length, length)?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SyntaxError::invalid(
                self.field(name),
                format!("must be {length} digits"),
            ));
        }
        Ok(text)
    }

    fn amount(&mut self, name: &str, required: bool) -> Result<Option<i64>, SyntaxError> {
        let text = self.optional_text(name, 1, 20)?;
        match text {
            None if required => Err(SyntaxError::invalid(self.field(name), "missing")),
            None => Ok(None),
            Some(text) => incasso_domain::money::parse_st_amount_cents(&text)
                .map(Some)
                .map_err(|e| SyntaxError::invalid(self.field(name), e.to_string())),
        }
    }

    fn date(&mut self, name: &str) -> Result<Option<String>, SyntaxError> {
        let text = self.optional_text(name, 1, 40)?;
        if let Some(text) = &text {
            let date_part = text.get(..10).unwrap_or(text);
            if incasso_domain::validation::parse_date(date_part).is_err() {
                return Err(SyntaxError::invalid(
                    self.field(name),
                    format!("'{text}' is not a date"),
                ));
            }
        }
        Ok(text)
    }

    /// An `xsd:base64Binary` (required): groups of four base64 characters, white space
    /// anywhere, `=` padding only at the end; empty is a valid (empty) value. Not decoded:
    /// the content is only checked.
    fn base64(&mut self, name: &str) -> Result<(), SyntaxError> {
        let element = self
            .optional_element(name)?
            .ok_or_else(|| SyntaxError::invalid(self.field(name), "missing"))?;
        if !element.children.is_empty() {
            return Err(SyntaxError::invalid(
                self.field(name),
                "must hold text, not elements",
            ));
        }
        let mut length = 0usize;
        let mut padding = 0usize;
        for byte in element.text.bytes().filter(|b| !b.is_ascii_whitespace()) {
            let valid = match byte {
                b'=' => {
                    padding += 1;
                    true
                }
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => padding == 0,
                _ => false,
            };
            if !valid {
                return Err(SyntaxError::invalid(self.field(name), "is not base64"));
            }
            length += 1;
        }
        if !length.is_multiple_of(4) || padding > 2 {
            return Err(SyntaxError::invalid(self.field(name), "is not base64"));
        }
        Ok(())
    }

    fn boolean(&mut self, name: &str) -> Result<Option<bool>, SyntaxError> {
        match self.optional_text(name, 1, 5)?.as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(SyntaxError::invalid(
                self.field(name),
                "must be true or false",
            )),
        }
    }

    /// Fails on any child not read; in lenient mode notes each one's path instead (names
    /// only, cut: never content, which could be personal data).
    fn finish(self) -> Result<(), SyntaxError> {
        let mut unread = self
            .taken
            .iter()
            .zip(&self.element.children)
            .filter(|(taken, _)| !**taken)
            .map(|(_, child)| {
                format!(
                    "{}.{}",
                    self.path,
                    child.name.chars().take(100).collect::<String>()
                )
            });
        match self.unknown {
            Some(unknown) => {
                unknown.borrow_mut().extend(unread);
                Ok(())
            }
            None => match unread.next() {
                Some(field) => Err(SyntaxError::invalid(
                    field,
                    "is not a field of this message",
                )),
                None => Ok(()),
            },
        }
    }
}

fn header(fields: &mut Fields<'_>) -> Result<Header, SyntaxError> {
    Ok(Header {
        id_pa: fields.text("idPA", 1, 35)?,
        id_broker_pa: fields.text("idBrokerPA", 1, 35)?,
        id_station: fields.text("idStation", 1, 35)?,
    })
}

fn qr_code(fields: &mut Fields<'_>) -> Result<QrCode, SyntaxError> {
    let element = fields.element("qrCode")?;
    let path = fields.field("qrCode");
    let mut qr = fields.within(element, &path)?;
    let code = QrCode {
        fiscal_code: qr.digits("fiscalCode", 11)?,
        notice_number: qr.digits("noticeNumber", 18)?,
    };
    qr.finish()?;
    Ok(code)
}

fn subject(fields: &mut Fields<'_>, name: &str) -> Result<Option<Subject>, SyntaxError> {
    let Some(element) = fields.optional_element(name)? else {
        return Ok(None);
    };
    let path = fields.field(name);
    let mut subject = fields.within(element, &path)?;
    let id = subject.element("uniqueIdentifier")?;
    let mut id_fields = subject.within(id, &format!("{path}.uniqueIdentifier"))?;
    let entity_type = id_fields.text("entityUniqueIdentifierType", 1, 1)?;
    if entity_type != "F" && entity_type != "G" {
        return Err(SyntaxError::invalid(
            format!("{path}.uniqueIdentifier.entityUniqueIdentifierType"),
            "must be F or G",
        ));
    }
    let unique_identifier = id_fields.text("entityUniqueIdentifierValue", 2, 16)?;
    id_fields.finish()?;
    let parsed = Subject {
        entity_type,
        unique_identifier,
        full_name: subject.text("fullName", 1, 70)?,
        street_name: subject.optional_text("streetName", 1, 70)?,
        civic_number: subject.optional_text("civicNumber", 1, 16)?,
        postal_code: subject.optional_text("postalCode", 1, 16)?,
        city: subject.optional_text("city", 1, 35)?,
        state_province_region: subject.optional_text("stateProvinceRegion", 1, 35)?,
        country: subject.optional_text("country", 2, 2)?,
        email: subject.optional_text("e-mail", 1, 256)?,
    };
    subject.finish()?;
    Ok(Some(parsed))
}

fn metadata(fields: &mut Fields<'_>) -> Result<Vec<MapEntry>, SyntaxError> {
    let Some(element) = fields.optional_element("metadata")? else {
        return Ok(Vec::new());
    };
    let path = fields.field("metadata");
    let mut metadata = fields.within(element, &path)?;
    let entries = metadata.all("mapEntry")?;
    if entries.is_empty() || entries.len() > 15 {
        return Err(SyntaxError::invalid(
            format!("{path}.mapEntry"),
            format!("1 to 15 entries, got {}", entries.len()),
        ));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let mut pair = metadata.within(entry, &format!("{path}.mapEntry[{i}]"))?;
        out.push(MapEntry {
            key: pair.text("key", 1, 140)?,
            value: pair.text("value", 1, 140)?,
        });
        pair.finish()?;
    }
    metadata.finish()?;
    Ok(out)
}

fn transfers(fields: &mut Fields<'_>, v2: bool) -> Result<Vec<ReceiptTransfer>, SyntaxError> {
    let list = fields.element("transferList")?;
    let path = fields.field("transferList");
    let mut list_fields = fields.within(list, &path)?;
    let items = list_fields.all("transfer")?;
    if items.is_empty() || items.len() > 5 {
        return Err(SyntaxError::invalid(
            format!("{path}.transfer"),
            format!("1 to 5 transfers, got {}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let item_path = format!("{path}.transfer[{i}]");
        let mut t = list_fields.within(item, &item_path)?;
        let id_transfer = t.text("idTransfer", 1, 1)?;
        let id_transfer: u8 = id_transfer
            .parse()
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| {
                SyntaxError::invalid(format!("{item_path}.idTransfer"), "must be 1 to 5")
            })?;
        let amount_cents = t.amount("transferAmount", true)?.unwrap_or(0);
        if amount_cents == 0 {
            return Err(SyntaxError::invalid(
                format!("{item_path}.transferAmount"),
                "must not be zero",
            ));
        }
        let fiscal_code_pa = t.digits("fiscalCodePA", 11)?;
        let company_name = if v2 {
            t.optional_text("companyName", 1, 140)?
        } else {
            None
        };
        let iban = t.optional_text("IBAN", 1, 35)?;
        let stamp = if v2 {
            t.optional_text("MBDAttachment", 1, 512 * 1024)?
                .map(|b| b.split_ascii_whitespace().collect::<String>())
        } else {
            None
        };
        if iban.is_some() == stamp.is_some() {
            let what = if v2 {
                "exactly one of IBAN or MBDAttachment"
            } else {
                "IBAN is required"
            };
            return Err(SyntaxError::invalid(format!("{item_path}.IBAN"), what));
        }
        let remittance_information = t.text("remittanceInformation", 1, 140)?;
        let transfer_category = t.text("transferCategory", 1, 140)?;
        let metadata = metadata(&mut t)?;
        t.finish()?;
        out.push(ReceiptTransfer {
            id_transfer,
            amount_cents,
            fiscal_code_pa,
            company_name,
            iban,
            stamp,
            remittance_information,
            transfer_category,
            metadata,
        });
    }
    list_fields.finish()?;
    Ok(out)
}

fn receipt(fields: &mut Fields<'_>, v2: bool) -> Result<Receipt, SyntaxError> {
    let element = fields.element("receipt")?;
    let path = fields.field("receipt");
    let mut r = fields.within(element, &path)?;
    let receipt_id = r.text("receiptId", 1, incasso_domain::ledger::RECEIPT_ID_MAX_CHARS)?;
    let notice_number = r.digits("noticeNumber", 18)?;
    let fiscal_code = r.digits("fiscalCode", 11)?;
    let outcome = r.text("outcome", 2, 2)?;
    if outcome != "OK" && outcome != "KO" {
        return Err(SyntaxError::invalid(
            format!("{path}.outcome"),
            "must be OK or KO",
        ));
    }
    let creditor_reference_id = r.text("creditorReferenceId", 1, 35)?;
    let payment_amount_cents = r.amount("paymentAmount", true)?.unwrap_or(0);
    let description = r.text("description", 1, 140)?;
    let company_name = r.text("companyName", 1, 140)?;
    let office_name = r.optional_text("officeName", 1, 140)?;
    let debtor = subject(&mut r, "debtor")?
        .ok_or_else(|| SyntaxError::invalid(format!("{path}.debtor"), "missing"))?;
    let transfers = transfers(&mut r, v2)?;
    let id_psp = r.text("idPSP", 1, 35)?;
    let psp_fiscal_code = r.optional_text("pspFiscalCode", 1, 70)?;
    let psp_partita_iva = r.optional_text("pspPartitaIVA", 1, 20)?;
    let psp_company_name = r.text("PSPCompanyName", 1, 70)?;
    let id_channel = r.text("idChannel", 1, 35)?;
    let channel_description = r.text("channelDescription", 1, 35)?;
    let payer = subject(&mut r, "payer")?;
    let payment_method = r.optional_text("paymentMethod", 1, 35)?;
    let payment_note = if v2 {
        r.optional_text("paymentNote", 1, 210)?
    } else {
        None
    };
    let fee_cents = r.amount("fee", false)?;
    let (primary_ci_incurred_fee_cents, id_bundle, id_ci_bundle) = if v2 {
        (
            r.amount("primaryCiIncurredFee", false)?,
            r.optional_text("idBundle", 1, 70)?,
            r.optional_text("idCiBundle", 1, 70)?,
        )
    } else {
        (None, None, None)
    };
    let payment_date_time = r.date("paymentDateTime")?;
    let application_date = r.date("applicationDate")?;
    let transfer_date = r.date("transferDate")?;
    let metadata = metadata(&mut r)?;
    let stand_in = r.boolean("standIn")?.unwrap_or(false);
    r.finish()?;
    Ok(Receipt {
        receipt_id,
        notice_number,
        fiscal_code,
        outcome,
        creditor_reference_id,
        payment_amount_cents,
        description,
        company_name,
        office_name,
        debtor,
        transfers,
        id_psp,
        psp_fiscal_code,
        psp_partita_iva,
        psp_company_name,
        id_channel,
        channel_description,
        payer,
        payment_method,
        payment_note,
        fee_cents,
        primary_ci_incurred_fee_cents,
        id_bundle,
        id_ci_bundle,
        payment_date_time,
        application_date,
        transfer_date,
        metadata,
        stand_in,
    })
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
    let head = header(&mut fields)?;
    let request = match operation {
        Operation::VerifyPaymentNotice => Request::Verify(VerifyRequest {
            header: head,
            qr_code: qr_code(&mut fields)?,
        }),
        Operation::GetPayment | Operation::GetPaymentV2 => {
            let qr_code = qr_code(&mut fields)?;
            let amount_cents = fields.amount("amount", false)?;
            fields.optional_text("paymentNote", 1, 210)?;
            let transfer_type = match fields.optional_text("transferType", 1, 6)?.as_deref() {
                None => None,
                Some("POSTAL") => Some(TransferType::Postal),
                Some("PAGOPA") => Some(TransferType::PagoPa),
                Some(_) => {
                    return Err(SyntaxError::invalid(
                        format!("{}.transferType", wrapper.name),
                        "must be POSTAL or PAGOPA",
                    ));
                }
            };
            fields.date("dueDate")?;
            Request::GetPayment(
                GetPaymentRequest {
                    header: head,
                    qr_code,
                    amount_cents,
                    transfer_type,
                },
                operation,
            )
        }
        Operation::SendRt | Operation::SendRtV2 => {
            let mut receipt = receipt(&mut fields, operation == Operation::SendRtV2)?;
            // SANP 3.6.0 put `standin` on the request, SANP 3.9.0 moved it into the receipt
            // as `standIn`: a Node on either version may send either, and either one true
            // means the payment was authorised in Stand-In.
            receipt.stand_in |= fields.boolean("standin")?.unwrap_or(false);
            Request::SendRt(
                Box::new(SendRtRequest {
                    header: head,
                    receipt,
                    unknown_elements: Vec::new(),
                }),
                operation,
            )
        }
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
        send.unknown_elements = unknown.into_inner();
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(wrapper: &str, inner: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <soapenv:Envelope xmlns:soapenv=\"{SOAP_ENVELOPE_NS}\" xmlns:paf=\"{PA_FOR_NODE_NS}\">\
             <soapenv:Body><paf:{wrapper}>{inner}</paf:{wrapper}></soapenv:Body></soapenv:Envelope>"
        )
    }

    const HEADER: &str = "<idPA>01199250158</idPA><idBrokerPA>01199250158</idBrokerPA>\
                          <idStation>01199250158_01</idStation>";
    const QR: &str = "<qrCode><fiscalCode>01199250158</fiscalCode>\
                      <noticeNumber>312000000001234587</noticeNumber></qrCode>";

    fn verify(inner: &str) -> Result<Request, SyntaxError> {
        parse_request(
            envelope("paVerifyPaymentNoticeReq", inner).as_bytes(),
            Limits::default(),
        )
    }

    fn field_error(result: Result<Request, SyntaxError>) -> (String, String) {
        match result {
            Err(SyntaxError::Invalid { field, message }) => (field, message),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    const DEBTOR: &str = "<debtor><uniqueIdentifier><entityUniqueIdentifierType>F</entityUniqueIdentifierType>\
        <entityUniqueIdentifierValue>RSSMRA80A01F205X</entityUniqueIdentifierValue></uniqueIdentifier>\
        <fullName>Mario Rossi</fullName><city>Milano</city></debtor>";
    const PAYER: &str = "<payer><uniqueIdentifier><entityUniqueIdentifierType>F</entityUniqueIdentifierType>\
        <entityUniqueIdentifierValue>BNCLRA85M41F205C</entityUniqueIdentifierValue></uniqueIdentifier>\
        <fullName>Laura Bianchi</fullName></payer>";

    fn transfer(id: u8) -> String {
        format!(
            "<transfer><idTransfer>{id}</idTransfer><transferAmount>1.00</transferAmount>\
             <fiscalCodePA>01199250158</fiscalCodePA><companyName>Comune di Milano</companyName>\
             <IBAN>IT02N0306909400000012345678</IBAN><remittanceInformation>/RFB/1/1.00</remittanceInformation>\
             <transferCategory>9/0101101IM/</transferCategory>\
             <metadata><mapEntry><key>k</key><value>v{id}</value></mapEntry></metadata></transfer>"
        )
    }

    fn receipt_v2(description: &str, transfers: usize, tail: &str) -> String {
        let list: String = (1..=transfers).map(|i| transfer(i as u8)).collect();
        envelope(
            "paSendRTV2Request",
            &format!(
                "{HEADER}<receipt><receiptId>c3e7d4b2a1f04e6d9b8a7c6d5e4f3a2b</receiptId>\
                 <noticeNumber>312000000001234587</noticeNumber><fiscalCode>01199250158</fiscalCode>\
                 <outcome>OK</outcome><creditorReferenceId>12000000001234587</creditorReferenceId>\
                 <paymentAmount>{transfers}.00</paymentAmount><description>{description}</description>\
                 <companyName>Comune di Milano</companyName>{DEBTOR}<transferList>{list}</transferList>\
                 <idPSP>BCITITMM</idPSP><PSPCompanyName>Intesa</PSPCompanyName><idChannel>BCITITMM_01</idChannel>\
                 <channelDescription>app</channelDescription>{PAYER}<fee>1.00</fee>\
                 <primaryCiIncurredFee>0.20</primaryCiIncurredFee>\
                 <paymentDateTime>2026-11-20T10:15:00</paymentDateTime>\
                 <metadata><mapEntry><key>a</key><value>b</value></mapEntry></metadata>{tail}</receipt>"
            ),
        )
    }

    fn receipt_of(xml: &str) -> Receipt {
        match parse_request(xml.as_bytes(), Limits::default()) {
            Ok(Request::SendRt(send, Operation::SendRtV2)) => send.receipt,
            other => panic!("expected a paSendRTV2, got {other:?}"),
        }
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
    fn missing_fields_are_named() {
        let (field, message) = field_error(verify(QR));
        assert_eq!(
            (field.as_str(), message.as_str()),
            ("paVerifyPaymentNoticeReq.idPA", "missing")
        );
        let (field, _) = field_error(verify(
            &HEADER.replace("<idStation>01199250158_01</idStation>", ""),
        ));
        assert_eq!(field, "paVerifyPaymentNoticeReq.idStation");
        let (field, _) = field_error(verify(HEADER));
        assert_eq!(field, "paVerifyPaymentNoticeReq.qrCode");
        let (field, _) = field_error(verify(&format!(
            "{HEADER}{}",
            QR.replace("<fiscalCode>01199250158</fiscalCode>", "")
        )));
        assert_eq!(field, "paVerifyPaymentNoticeReq.qrCode.fiscalCode");
        let without_debtor = receipt_v2("Retta", 1, "").replace(DEBTOR, "");
        let (field, message) =
            field_error(parse_request(without_debtor.as_bytes(), Limits::default()));
        assert_eq!(
            (field.as_str(), message.as_str()),
            ("paSendRTV2Request.receipt.debtor", "missing")
        );
        let without_iban =
            receipt_v2("Retta", 1, "").replace("<IBAN>IT02N0306909400000012345678</IBAN>", "");
        let (field, message) =
            field_error(parse_request(without_iban.as_bytes(), Limits::default()));
        assert_eq!(
            field,
            "paSendRTV2Request.receipt.transferList.transfer[0].IBAN"
        );
        assert!(message.contains("exactly one of IBAN or MBDAttachment"));
    }

    #[test]
    fn repeated_fields_are_refused() {
        let (field, message) = field_error(verify(&format!("{HEADER}{QR}{QR}")));
        assert_eq!(field, "paVerifyPaymentNoticeReq.qrCode");
        assert_eq!(message, "appears more than once");
        let (field, _) = field_error(verify(&format!("<idPA>01199250158</idPA>{HEADER}{QR}")));
        assert_eq!(field, "paVerifyPaymentNoticeReq.idPA");
        let twice = receipt_v2(
            "Retta",
            1,
            "<standIn>false</standIn><standIn>true</standIn>",
        );
        let (field, _) = field_error(parse_request(twice.as_bytes(), Limits::default()));
        assert_eq!(field, "paSendRTV2Request.receipt.standIn");
    }

    #[test]
    fn oversize_fields_are_refused_counting_characters() {
        let station = |s: &str| {
            verify(&format!(
                "<idPA>01199250158</idPA><idBrokerPA>01199250158</idBrokerPA>\
                 <idStation>{s}</idStation>{QR}"
            ))
        };
        // 35 two-byte characters are 70 bytes but within stText35.
        assert!(station(&"è".repeat(35)).is_ok());
        let (field, message) = field_error(station(&"è".repeat(36)));
        assert_eq!(field, "paVerifyPaymentNoticeReq.idStation");
        assert_eq!(message, "must be 1 to 35 characters, got 36");
        assert!(
            parse_request(
                receipt_v2(&"à".repeat(140), 1, "").as_bytes(),
                Limits::default()
            )
            .is_ok()
        );
        let (field, _) = field_error(parse_request(
            receipt_v2(&"à".repeat(141), 1, "").as_bytes(),
            Limits::default(),
        ));
        assert_eq!(field, "paSendRTV2Request.receipt.description");
        let (field, message) = field_error(parse_request(
            receipt_v2("Retta", 6, "").as_bytes(),
            Limits::default(),
        ));
        assert_eq!(field, "paSendRTV2Request.receipt.transferList.transfer");
        assert_eq!(message, "1 to 5 transfers, got 6");
        let entries = "<mapEntry><key>k</key><value>v</value></mapEntry>".repeat(16);
        let crowded = receipt_v2("Retta", 1, "").replace(
            "<metadata><mapEntry><key>a</key><value>b</value></mapEntry></metadata>",
            &format!("<metadata>{entries}</metadata>"),
        );
        let (field, message) = field_error(parse_request(crowded.as_bytes(), Limits::default()));
        assert_eq!(field, "paSendRTV2Request.receipt.metadata.mapEntry");
        assert_eq!(message, "1 to 15 entries, got 16");
        let (field, _) = field_error(parse_request(
            receipt_v2("Retta", 1, "")
                .replace("RSSMRA80A01F205X", "RSSMRA80A01F205XY")
                .as_bytes(),
            Limits::default(),
        ));
        assert_eq!(
            field,
            "paSendRTV2Request.receipt.debtor.uniqueIdentifier.entityUniqueIdentifierValue"
        );
    }

    #[test]
    fn a_receipt_keeps_every_field() {
        let receipt = receipt_of(&receipt_v2("Retta", 2, "<standIn>1</standIn>"));
        assert_eq!(receipt.payment_amount_cents, 200);
        assert_eq!(receipt.fee_cents, Some(100));
        assert_eq!(receipt.primary_ci_incurred_fee_cents, Some(20));
        assert!(receipt.stand_in);
        assert_eq!(receipt.debtor.full_name, "Mario Rossi");
        assert_eq!(receipt.debtor.city.as_deref(), Some("Milano"));
        assert_eq!(
            receipt.payer.as_ref().map(|p| p.unique_identifier.as_str()),
            Some("BNCLRA85M41F205C")
        );
        assert_eq!(receipt.metadata.len(), 1);
        assert_eq!(receipt.transfers[1].id_transfer, 2);
        assert_eq!(receipt.transfers[1].metadata[0].value, "v2");
        assert_eq!(
            receipt.transfers[0].company_name.as_deref(),
            Some("Comune di Milano")
        );
        // The debtor and payer never reach a log line through Debug.
        let debug = format!("{receipt:?}");
        assert!(!debug.contains("Mario") && !debug.contains("RSSMRA80A01F205X"));
        assert!(!debug.contains("Laura") && !debug.contains("BNCLRA85M41F205C"));
    }

    #[test]
    fn the_canonical_form_ignores_formatting_and_sees_every_field() {
        let original = receipt_v2("Retta", 2, "<standIn>true</standIn>");
        let canonical = receipt_of(&original).canonical();
        // Other prefixes, whitespace between and around values, `1` for `true`.
        let reformatted = original
            .replace("soapenv:", "s:")
            .replace("xmlns:soapenv=", "xmlns:s=")
            .replace("paf:", "p:")
            .replace("xmlns:paf=", "xmlns:p=")
            .replace("><", ">\n    <")
            .replace(
                "<fullName>Mario Rossi</fullName>",
                "<fullName>  Mario Rossi\n</fullName>",
            )
            .replace("<standIn>true</standIn>", "<standIn>1</standIn>");
        assert_ne!(original, reformatted);
        assert_eq!(receipt_of(&reformatted).canonical(), canonical);
        let absent_is_false = receipt_v2("Retta", 2, "");
        assert_eq!(
            receipt_of(&absent_is_false).canonical(),
            receipt_of(&receipt_v2("Retta", 2, "<standIn>false</standIn>")).canonical()
        );
        for (from, to) in [
            (
                "<fullName>Mario Rossi</fullName>",
                "<fullName>Mario Rosso</fullName>",
            ),
            ("<city>Milano</city>", "<city>Monza</city>"),
            (
                "<fullName>Laura Bianchi</fullName>",
                "<fullName>Laura Bianco</fullName>",
            ),
            ("<value>b</value>", "<value>c</value>"),
            ("<value>v2</value>", "<value>v9</value>"),
            ("<primaryCiIncurredFee>0.20", "<primaryCiIncurredFee>0.30"),
            (
                "<companyName>Comune di Milano</companyName><IBAN>",
                "<IBAN>",
            ),
        ] {
            assert!(original.contains(from), "{from}");
            let changed = original.replacen(from, to, 1);
            assert_ne!(
                receipt_of(&changed).canonical(),
                canonical,
                "{from} -> {to}"
            );
        }
    }

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
    fn attributes_the_schema_does_not_declare_are_refused_naming_element_and_attribute() {
        let (field, message) = field_error(verify(&format!(
            "{}{QR}",
            HEADER.replace("<idPA>", "<idPA a=\"x\">")
        )));
        assert_eq!(field, "paVerifyPaymentNoticeReq.idPA");
        assert!(
            message.contains("attribute 'a' is not allowed"),
            "{message}"
        );
        let (field, message) = field_error(verify(&format!(
            "{HEADER}{}",
            QR.replace("<noticeNumber>", "<noticeNumber xml:lang=\"it\">")
        )));
        assert_eq!(field, "paVerifyPaymentNoticeReq.qrCode.noticeNumber");
        assert!(message.contains("'lang'"), "{message}");
        let xsi = format!("xmlns:xsi=\"{XSI_NS}\"");
        let (field, message) = field_error(verify(&format!(
            "{}{QR}",
            HEADER.replace("<idPA>", &format!("<idPA {xsi} xsi:type=\"x\">"))
        )));
        assert_eq!(field, "paVerifyPaymentNoticeReq.idPA");
        assert!(
            message.contains("'type'") && message.contains(XSI_NS),
            "{message}"
        );
        // In a repeated element, the refusal says which one.
        let receipt = receipt_v2("Retta", 2, "");
        let second = receipt.rfind("<transfer>").unwrap();
        let mut tagged = receipt.clone();
        tagged.replace_range(second..second + 10, "<transfer id=\"2\">");
        let (field, _) = field_error(parse_request(tagged.as_bytes(), Limits::default()));
        assert_eq!(field, "paSendRTV2Request.receipt.transferList.transfer[1]");
        // The wrapper is a paForNode element too.
        let wrapped = envelope("paVerifyPaymentNoticeReq", &format!("{HEADER}{QR}")).replace(
            "<paf:paVerifyPaymentNoticeReq>",
            "<paf:paVerifyPaymentNoticeReq v=\"1\">",
        );
        let (field, _) = field_error(parse_request(wrapped.as_bytes(), Limits::default()));
        assert_eq!(field, "paVerifyPaymentNoticeReq");
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

    fn send_rt_of(xml: &str) -> SendRtRequest {
        match parse_request(xml.as_bytes(), Limits::default()) {
            Ok(Request::SendRt(send, _)) => *send,
            other => panic!("expected a receipt delivery, got {other:?}"),
        }
    }

    #[test]
    fn a_request_level_standin_is_combined_with_the_receipts() {
        for (request_level, receipt_level, expected) in [
            ("<standin>true</standin>", "", true),
            ("<standin>1</standin>", "<standIn>false</standIn>", true),
            ("<standin>false</standin>", "<standIn>true</standIn>", true),
            (
                "<standin>false</standin>",
                "<standIn>false</standIn>",
                false,
            ),
            ("<standin>0</standin>", "", false),
            ("", "", false),
        ] {
            let v2 = receipt_v2("Retta", 1, receipt_level)
                .replace("</receipt>", &format!("</receipt>{request_level}"));
            assert_eq!(
                send_rt_of(&v2).receipt.stand_in,
                expected,
                "{request_level} {receipt_level}"
            );
            let v1 = v2
                .replace("paSendRTV2Request", "paSendRTReq")
                .replace(
                    "<companyName>Comune di Milano</companyName><IBAN>",
                    "<IBAN>",
                )
                .replace("<primaryCiIncurredFee>0.20</primaryCiIncurredFee>", "");
            let send = send_rt_of(&v1);
            assert_eq!(send.receipt.stand_in, expected, "V1 {request_level}");
            assert!(
                send.unknown_elements.is_empty(),
                "{:?}",
                send.unknown_elements
            );
        }
        // The same receipt, whichever place says Stand-In.
        let inside = receipt_v2("Retta", 1, "<standIn>true</standIn>");
        let outside =
            receipt_v2("Retta", 1, "").replace("</receipt>", "</receipt><standin>true</standin>");
        assert_eq!(
            receipt_of(&inside).canonical(),
            receipt_of(&outside).canonical()
        );
        // Still a boolean, and still once.
        let wrong =
            receipt_v2("Retta", 1, "").replace("</receipt>", "</receipt><standin>yes</standin>");
        let (field, _) = field_error(parse_request(wrong.as_bytes(), Limits::default()));
        assert_eq!(field, "paSendRTV2Request.standin");
        let twice = receipt_v2("Retta", 1, "").replace(
            "</receipt>",
            "</receipt><standin>true</standin><standin>true</standin>",
        );
        let (field, _) = field_error(parse_request(twice.as_bytes(), Limits::default()));
        assert_eq!(field, "paSendRTV2Request.standin");
    }

    #[test]
    fn unknown_elements_of_a_receipt_are_noted_by_name_and_skipped() {
        let original = receipt_v2("Retta", 2, "<standIn>false</standIn>");
        let extended = original
            .replace("</receipt>", "</receipt><nodeVersion>4.0</nodeVersion>")
            .replace(
                "<idPSP>",
                "<payerConsent><given>RSSMRA80A01F205X</given></payerConsent><idPSP>",
            )
            .replacen("<IBAN>", "<bic>BCITITMM</bic><IBAN>", 1)
            .replace("<key>a</key>", "<key>a</key><lang>it</lang>")
            .replace(
                "<fullName>Mario Rossi</fullName>",
                "<fullName>Mario Rossi</fullName><pec>x@pec.it</pec>",
            );
        let send = send_rt_of(&extended);
        let mut noted = send.unknown_elements.clone();
        noted.sort();
        assert_eq!(
            noted,
            [
                "paSendRTV2Request.nodeVersion",
                "paSendRTV2Request.receipt.debtor.pec",
                "paSendRTV2Request.receipt.metadata.mapEntry[0].lang",
                "paSendRTV2Request.receipt.payerConsent",
                "paSendRTV2Request.receipt.transferList.transfer[0].bic",
            ]
        );
        assert_eq!(send.receipt, receipt_of(&original));
        // Known fields keep every check.
        let wrong = extended.replace("<fee>1.00</fee>", "<fee>1.0</fee>");
        let (field, _) = field_error(parse_request(wrong.as_bytes(), Limits::default()));
        assert_eq!(field, "paSendRTV2Request.receipt.fee");
        // Verify and activation stay strict.
        let (field, message) =
            field_error(verify(&format!("{HEADER}{QR}<nodeVersion>4</nodeVersion>")));
        assert_eq!(
            (field.as_str(), message.as_str()),
            (
                "paVerifyPaymentNoticeReq.nodeVersion",
                "is not a field of this message"
            )
        );
        let get = envelope(
            "paGetPaymentV2Request",
            &format!("{HEADER}{QR}<amount>1.00</amount><x/>"),
        );
        let (field, _) = field_error(parse_request(get.as_bytes(), Limits::default()));
        assert_eq!(field, "paGetPaymentV2Request.x");
        let get = envelope(
            "paGetPaymentReq",
            &format!("{HEADER}{}", QR.replace("</qrCode>", "<x/></qrCode>")),
        );
        let (field, _) = field_error(parse_request(get.as_bytes(), Limits::default()));
        assert_eq!(field, "paGetPaymentReq.qrCode.x");
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
