//! The requests that read a notice, verify (paVerifyPaymentNotice) and activation
//! (paGetPayment, paGetPaymentV2): the caller's header, the QR code and what the PSP asks.
//! They are read strictly: an element the XSD does not know is refused.

use super::fields::Fields;
use super::{Operation, Request, SyntaxError};

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

pub(super) fn header(fields: &mut Fields<'_>) -> Result<Header, SyntaxError> {
    Ok(Header {
        id_pa: fields.text("idPA", 1, 35)?,
        id_broker_pa: fields.text("idBrokerPA", 1, 35)?,
        id_station: fields.text("idStation", 1, 35)?,
    })
}

pub(super) fn qr_code(fields: &mut Fields<'_>) -> Result<QrCode, SyntaxError> {
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

/// The rest of a paGetPayment(V2) request after its header.
pub(super) fn get_payment(
    fields: &mut Fields<'_>,
    header: Header,
    operation: Operation,
) -> Result<Request, SyntaxError> {
    let qr_code = qr_code(fields)?;
    let amount_cents = fields.amount("amount", false)?;
    fields.optional_text("paymentNote", 1, 210)?;
    let transfer_type = match fields.optional_text("transferType", 1, 6)?.as_deref() {
        None => None,
        Some("POSTAL") => Some(TransferType::Postal),
        Some("PAGOPA") => Some(TransferType::PagoPa),
        Some(_) => {
            return Err(SyntaxError::invalid(
                fields.field("transferType"),
                "must be POSTAL or PAGOPA",
            ));
        }
    };
    fields.date("dueDate")?;
    Ok(Request::GetPayment(
        GetPaymentRequest {
            header,
            qr_code,
            amount_cents,
            transfer_type,
        },
        operation,
    ))
}
