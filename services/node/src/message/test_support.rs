//! Messages for the unit tests of the paForNode readers: envelopes, headers, QR codes and a
//! V2 receipt with every kind of field, and helpers to read what the parser made of them.

#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;

pub(super) fn envelope(wrapper: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"{SOAP_ENVELOPE_NS}\" xmlns:paf=\"{PA_FOR_NODE_NS}\">\
         <soapenv:Body><paf:{wrapper}>{inner}</paf:{wrapper}></soapenv:Body></soapenv:Envelope>"
    )
}

pub(super) const HEADER: &str = "<idPA>01199250158</idPA><idBrokerPA>01199250158</idBrokerPA>\
                      <idStation>01199250158_01</idStation>";

pub(super) const QR: &str = "<qrCode><fiscalCode>01199250158</fiscalCode>\
                  <noticeNumber>312000000001234587</noticeNumber></qrCode>";

pub(super) fn verify(inner: &str) -> Result<Request, SyntaxError> {
    parse_request(
        envelope("paVerifyPaymentNoticeReq", inner).as_bytes(),
        Limits::default(),
    )
}

pub(super) fn field_error(result: Result<Request, SyntaxError>) -> (String, String) {
    match result {
        Err(SyntaxError::Invalid { field, message }) => (field, message),
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

pub(super) const DEBTOR: &str = "<debtor><uniqueIdentifier><entityUniqueIdentifierType>F</entityUniqueIdentifierType>\
    <entityUniqueIdentifierValue>RSSMRA80A01F205X</entityUniqueIdentifierValue></uniqueIdentifier>\
    <fullName>Mario Rossi</fullName><city>Milano</city></debtor>";

pub(super) const PAYER: &str = "<payer><uniqueIdentifier><entityUniqueIdentifierType>F</entityUniqueIdentifierType>\
    <entityUniqueIdentifierValue>BNCLRA85M41F205C</entityUniqueIdentifierValue></uniqueIdentifier>\
    <fullName>Laura Bianchi</fullName></payer>";

pub(super) fn transfer(id: u8) -> String {
    format!(
        "<transfer><idTransfer>{id}</idTransfer><transferAmount>1.00</transferAmount>\
         <fiscalCodePA>01199250158</fiscalCodePA><companyName>Comune di Milano</companyName>\
         <IBAN>IT02N0306909400000012345678</IBAN><remittanceInformation>/RFB/1/1.00</remittanceInformation>\
         <transferCategory>9/0101101IM/</transferCategory>\
         <metadata><mapEntry><key>k</key><value>v{id}</value></mapEntry></metadata></transfer>"
    )
}

pub(super) fn receipt_v2(description: &str, transfers: usize, tail: &str) -> String {
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

pub(super) fn receipt_of(xml: &str) -> Receipt {
    match parse_request(xml.as_bytes(), Limits::default()) {
        Ok(Request::SendRt(send, Operation::SendRtV2)) => send.receipt,
        other => panic!("expected a paSendRTV2, got {other:?}"),
    }
}

pub(super) fn send_rt_of(xml: &str) -> SendRtRequest {
    match parse_request(xml.as_bytes(), Limits::default()) {
        Ok(Request::SendRt(send, _)) => *send,
        other => panic!("expected a receipt delivery, got {other:?}"),
    }
}
