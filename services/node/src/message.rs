//! The paForNode requests as typed values: the SOAP 1.1 envelope is unwrapped, the operation
//! is found from the body's wrapper element, and every field is checked against the XSD as it
//! is read (missing, repeated, unknown, namespace-qualified, too long, wrong pattern), so that
//! the handlers only ever see valid requests and every refusal names the field.

use crate::xml::{self, Element, Limits, XmlError};

/// The SOAP 1.1 envelope namespace.
pub const SOAP_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The paForNode payload namespace.
pub const PA_FOR_NODE_NS: &str = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd";

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

/// One transfer of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceiptTransfer {
    /// 1..5.
    pub id_transfer: u8,
    /// Cents.
    pub amount_cents: i64,
    /// Beneficiary.
    pub fiscal_code_pa: String,
    /// Account credited, or none for a digital stamp.
    pub iban: Option<String>,
    /// Causale.
    pub remittance_information: String,
    /// Taxonomy.
    pub transfer_category: String,
}

/// A receipt, as paSendRT(V2) carries it: what the store keeps beside the raw bytes.
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
    /// PSP id.
    pub id_psp: String,
    /// PSP name.
    pub psp_company_name: String,
    /// Channel.
    pub id_channel: String,
    /// Channel description.
    pub channel_description: String,
    /// Payment method.
    pub payment_method: Option<String>,
    /// Fee paid by the payer, cents.
    pub fee_cents: Option<i64>,
    /// When the payment was made, as sent.
    pub payment_date_time: Option<String>,
    /// PSP booking date.
    pub application_date: Option<String>,
    /// Date the PSP must credit by.
    pub transfer_date: Option<String>,
    /// Paid in Stand-In.
    pub stand_in: bool,
    /// 1..5 transfers.
    pub transfers: Vec<ReceiptTransfer>,
}

/// paSendRT / paSendRTV2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRtRequest {
    /// Caller (the receiving creditor).
    pub header: Header,
    /// The receipt.
    pub receipt: Receipt,
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

/// Reads the children of one element, each at most once unless asked, refusing unknown and
/// namespace-qualified ones.
struct Fields<'a> {
    element: &'a Element,
    path: String,
    taken: Vec<bool>,
}

impl<'a> Fields<'a> {
    fn new(element: &'a Element, path: &str) -> Result<Self, SyntaxError> {
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
        })
    }

    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    fn all(&mut self, name: &str) -> Vec<&'a Element> {
        let mut found = Vec::new();
        for (i, child) in self.element.children.iter().enumerate() {
            if child.name == name {
                self.taken[i] = true;
                found.push(child);
            }
        }
        found
    }

    fn optional_element(&mut self, name: &str) -> Result<Option<&'a Element>, SyntaxError> {
        let found = self.all(name);
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

    /// Fails on any child not read.
    fn finish(self) -> Result<(), SyntaxError> {
        match self.taken.iter().position(|t| !t) {
            Some(i) => Err(SyntaxError::invalid(
                format!("{}.{}", self.path, self.element.children[i].name),
                "is not a field of this message",
            )),
            None => Ok(()),
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
    let mut qr = Fields::new(element, &path)?;
    let code = QrCode {
        fiscal_code: qr.digits("fiscalCode", 11)?,
        notice_number: qr.digits("noticeNumber", 18)?,
    };
    qr.finish()?;
    Ok(code)
}

fn skip_subject(fields: &mut Fields<'_>, name: &str, required: bool) -> Result<(), SyntaxError> {
    // The debtor and payer are personal data: they are checked for shape and kept only in the
    // stored (encrypted) receipt document, never in a column.
    let Some(element) = fields.optional_element(name)? else {
        return if required {
            Err(SyntaxError::invalid(fields.field(name), "missing"))
        } else {
            Ok(())
        };
    };
    let path = fields.field(name);
    let mut subject = Fields::new(element, &path)?;
    let id = subject.element("uniqueIdentifier")?;
    let mut id_fields = Fields::new(id, &format!("{path}.uniqueIdentifier"))?;
    let kind = id_fields.text("entityUniqueIdentifierType", 1, 1)?;
    if kind != "F" && kind != "G" {
        return Err(SyntaxError::invalid(
            format!("{path}.uniqueIdentifier.entityUniqueIdentifierType"),
            "must be F or G",
        ));
    }
    id_fields.text("entityUniqueIdentifierValue", 2, 16)?;
    id_fields.finish()?;
    subject.text("fullName", 1, 70)?;
    subject.optional_text("streetName", 1, 70)?;
    subject.optional_text("civicNumber", 1, 16)?;
    subject.optional_text("postalCode", 1, 16)?;
    subject.optional_text("city", 1, 35)?;
    subject.optional_text("stateProvinceRegion", 1, 35)?;
    subject.optional_text("country", 2, 2)?;
    subject.optional_text("e-mail", 1, 256)?;
    subject.finish()
}

fn skip_metadata(fields: &mut Fields<'_>) -> Result<(), SyntaxError> {
    let Some(element) = fields.optional_element("metadata")? else {
        return Ok(());
    };
    let path = fields.field("metadata");
    let mut metadata = Fields::new(element, &path)?;
    let entries = metadata.all("mapEntry");
    if entries.is_empty() || entries.len() > 15 {
        return Err(SyntaxError::invalid(
            format!("{path}.mapEntry"),
            "1 to 15 entries",
        ));
    }
    for (i, entry) in entries.into_iter().enumerate() {
        let mut pair = Fields::new(entry, &format!("{path}.mapEntry[{i}]"))?;
        pair.text("key", 1, 140)?;
        pair.text("value", 1, 140)?;
        pair.finish()?;
    }
    metadata.finish()
}

fn transfers(fields: &mut Fields<'_>, v2: bool) -> Result<Vec<ReceiptTransfer>, SyntaxError> {
    let list = fields.element("transferList")?;
    let path = fields.field("transferList");
    let mut list_fields = Fields::new(list, &path)?;
    let items = list_fields.all("transfer");
    if items.is_empty() || items.len() > 5 {
        return Err(SyntaxError::invalid(
            format!("{path}.transfer"),
            format!("1 to 5 transfers, got {}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let item_path = format!("{path}.transfer[{i}]");
        let mut t = Fields::new(item, &item_path)?;
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
        if v2 {
            t.optional_text("companyName", 1, 140)?;
        }
        let iban = t.optional_text("IBAN", 1, 35)?;
        let stamp = if v2 {
            t.optional_text("MBDAttachment", 1, 512 * 1024)?
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
        skip_metadata(&mut t)?;
        t.finish()?;
        out.push(ReceiptTransfer {
            id_transfer,
            amount_cents,
            fiscal_code_pa,
            iban,
            remittance_information,
            transfer_category,
        });
    }
    list_fields.finish()?;
    Ok(out)
}

fn receipt(fields: &mut Fields<'_>, v2: bool) -> Result<Receipt, SyntaxError> {
    let element = fields.element("receipt")?;
    let path = fields.field("receipt");
    let mut r = Fields::new(element, &path)?;
    let receipt_id = r.text("receiptId", 1, 256)?;
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
    r.optional_text("officeName", 1, 140)?;
    skip_subject(&mut r, "debtor", true)?;
    let transfers = transfers(&mut r, v2)?;
    let id_psp = r.text("idPSP", 1, 35)?;
    r.optional_text("pspFiscalCode", 1, 70)?;
    r.optional_text("pspPartitaIVA", 1, 20)?;
    let psp_company_name = r.text("PSPCompanyName", 1, 70)?;
    let id_channel = r.text("idChannel", 1, 35)?;
    let channel_description = r.text("channelDescription", 1, 35)?;
    skip_subject(&mut r, "payer", false)?;
    let payment_method = r.optional_text("paymentMethod", 1, 35)?;
    if v2 {
        r.optional_text("paymentNote", 1, 210)?;
    }
    let fee_cents = r.amount("fee", false)?;
    if v2 {
        r.amount("primaryCiIncurredFee", false)?;
        r.optional_text("idBundle", 1, 70)?;
        r.optional_text("idCiBundle", 1, 70)?;
    }
    let payment_date_time = r.date("paymentDateTime")?;
    let application_date = r.date("applicationDate")?;
    let transfer_date = r.date("transferDate")?;
    skip_metadata(&mut r)?;
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
        id_psp,
        psp_company_name,
        id_channel,
        channel_description,
        payment_method,
        fee_cents,
        payment_date_time,
        application_date,
        transfer_date,
        stand_in,
        transfers,
    })
}

/// What the body names, for choosing the response wrapper even when the request is invalid.
pub fn operation_of(body: &[u8]) -> Option<Operation> {
    let root = xml::parse(body, Limits::default()).ok()?;
    let body = root.children.iter().find(|c| c.name == "Body")?;
    body.children
        .first()
        .and_then(|w| Operation::from_request_element(&w.name))
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
    let mut body = None;
    for child in &root.children {
        match (child.name.as_str(), child.namespace.as_deref()) {
            ("Header", Some(SOAP_ENVELOPE_NS)) if body.is_none() => {}
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
    let mut fields = Fields::new(wrapper, &wrapper.name)?;
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
            let receipt = receipt(&mut fields, operation == Operation::SendRtV2)?;
            Request::SendRt(
                Box::new(SendRtRequest {
                    header: head,
                    receipt,
                }),
                operation,
            )
        }
        Operation::DemandPaymentNotice => {
            fields.text("idServizio", 5, 5)?;
            fields.text("idSoggettoServizio", 5, 5)?;
            fields.text("datiSpecificiServizioRequest", 1, 512 * 1024)?;
            Request::Demand(head)
        }
    };
    fields.finish()?;
    Ok(request)
}
