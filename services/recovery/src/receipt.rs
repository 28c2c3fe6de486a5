//! A biz-events receipt (`CtReceiptModelResponse` of `biz_events.json`) read into the receipt
//! the store books ([`ReceiptInput`]), the same facts the Node's paSendRT gives: the key
//! (`fiscalCode`, `creditorReferenceId`, `receiptId`), the outcome, the PSP and channel, the
//! amounts, the payment's date and the transfers. Amounts are JSON numbers (euro) read from
//! their text into exact cents, as the FdR REST reader does; a fraction of a cent is refused.
//! The canonical form is the JSON as received, re-serialised (so a second recovery of the same
//! receipt is recognised as a redelivery); the raw bytes are stored encrypted like a paSendRT's.

use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use incasso_domain::notice_number::NoticeNumber;
use incasso_domain::receipt::NodeOutcome;
use incasso_domain::rome_time::from_rome_local;
use incasso_reconciliation::json_amount_cents;
use incasso_store::receipts::{ReceiptFacts, ReceiptInput, ReceiptPrimitive, ReceiptTransferInput};

/// What was asked of biz-events: the creditor (`organizationfiscalcode`), IUR and IUV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRequest {
    /// The creditor asking.
    pub creditor_fiscal_code: String,
    /// IUR: the FdR line's `identificativoUnivocoRiscossione`, the receipt's `receiptId`.
    pub receipt_id: String,
    /// IUV.
    pub iuv: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BizReceipt<'a> {
    receipt_id: Option<String>,
    notice_number: Option<String>,
    fiscal_code: Option<String>,
    outcome: Option<String>,
    creditor_reference_id: Option<String>,
    #[serde(borrow)]
    payment_amount: Option<&'a RawValue>,
    #[serde(default, borrow)]
    transfer_list: Option<Vec<BizTransfer<'a>>>,
    #[serde(rename = "idPSP")]
    id_psp: Option<String>,
    id_channel: Option<String>,
    #[serde(borrow)]
    fee: Option<&'a RawValue>,
    payment_date_time: Option<String>,
    payment_date_time_formatted: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BizTransfer<'a> {
    id_transfer: Option<i64>,
    #[serde(borrow)]
    transfer_amount: Option<&'a RawValue>,
    #[serde(rename = "fiscalCodePA")]
    fiscal_code_pa: Option<String>,
    iban: Option<String>,
    mbd_attachment: Option<String>,
    remittance_information: Option<String>,
    transfer_category: Option<String>,
}

fn required(value: Option<String>, field: &str) -> Result<String, String> {
    match value {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(format!("{field} is missing")),
    }
}

fn optional(value: Option<String>) -> Option<String> {
    value.filter(|t| !t.trim().is_empty())
}

/// A date-time as biz-events writes it: with a zone (`Z`, `+01:00`) as given; without one, as
/// Europe/Rome wall-clock time, as PagoPA writes its instants.
pub fn payment_instant(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(instant) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(instant);
    }
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(text, local)
        .ok()
        .map(from_rome_local)
}

/// Reads `body`, biz-events' answer to `asked`, into the receipt to book. Refused (with the
/// field named) when it is not a receipt, or is the receipt of another payment than the one
/// asked (another IUR or IUV, or a creditor that is neither the notice's nor a beneficiary).
pub fn read_receipt(asked: &ReceiptRequest, body: &[u8]) -> Result<ReceiptInput, String> {
    let receipt: BizReceipt<'_> =
        serde_json::from_slice(body).map_err(|e| format!("not a receipt: {e}"))?;
    let receipt_id = required(receipt.receipt_id, "receiptId")?;
    let iuv = required(receipt.creditor_reference_id, "creditorReferenceId")?;
    if receipt_id != asked.receipt_id || iuv != asked.iuv {
        return Err(format!(
            "the answer is the receipt of IUR {receipt_id} and IUV {iuv}, not of the one asked"
        ));
    }
    let creditor_fiscal_code = required(receipt.fiscal_code, "fiscalCode")?;
    let notice_number = required(receipt.notice_number, "noticeNumber")?;
    let outcome_text = required(receipt.outcome, "outcome")?;
    let outcome = NodeOutcome::parse(&outcome_text)
        .ok_or_else(|| format!("outcome: '{outcome_text}' is neither OK nor KO"))?;
    let amount = |raw: Option<&RawValue>, field: &str| -> Result<Option<i64>, String> {
        raw.filter(|r| r.get() != "null")
            .map(|r| json_amount_cents(r.get()).map_err(|e| format!("{field}: {e}")))
            .transpose()
    };
    let payment_amount_cents = amount(receipt.payment_amount, "paymentAmount")?
        .ok_or_else(|| "paymentAmount is missing".to_owned())?;
    let fee_cents = amount(receipt.fee, "fee")?;
    let transfer_list = receipt
        .transfer_list
        .filter(|l| !l.is_empty())
        .ok_or_else(|| "transferList is missing or empty".to_owned())?;
    if transfer_list.len() > 5 {
        return Err(format!(
            "transferList: at most 5 transfers, got {}",
            transfer_list.len()
        ));
    }
    let mut transfers = Vec::with_capacity(transfer_list.len());
    for (i, t) in transfer_list.into_iter().enumerate() {
        let field = |name: &str| format!("transferList[{i}].{name}");
        // idTransfer is optional in the model: absent, the transfer's position (1..5).
        let id_transfer = match t.id_transfer {
            Some(n @ 1..=5) => u8::try_from(n).unwrap_or(1),
            Some(n) => return Err(format!("{}: {n} is not 1..5", field("idTransfer"))),
            None => u8::try_from(i + 1).unwrap_or(1),
        };
        let amount_cents = amount(t.transfer_amount, &field("transferAmount"))?
            .ok_or_else(|| format!("{} is missing", field("transferAmount")))?;
        let iban = optional(t.iban);
        if iban.is_none() && optional(t.mbd_attachment).is_none() {
            return Err(format!(
                "{}: neither an IBAN nor a digital stamp (mbdAttachment)",
                field("iban")
            ));
        }
        transfers.push(ReceiptTransferInput {
            id_transfer,
            beneficiary: required(t.fiscal_code_pa, &field("fiscalCodePA"))?,
            iban,
            amount_cents,
            remittance_information: t.remittance_information.unwrap_or_default(),
            transfer_category: t.transfer_category.unwrap_or_default(),
        });
    }
    if creditor_fiscal_code != asked.creditor_fiscal_code
        && !transfers
            .iter()
            .any(|t| t.beneficiary == asked.creditor_fiscal_code)
    {
        return Err(format!(
            "the receipt is of creditor {creditor_fiscal_code} and pays nothing to {}",
            asked.creditor_fiscal_code
        ));
    }
    let payment_date_time = optional(receipt.payment_date_time)
        .or_else(|| optional(receipt.payment_date_time_formatted.clone()));
    let paid_at = [
        payment_date_time.as_deref(),
        receipt.payment_date_time_formatted.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find_map(payment_instant);
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_vec(&v))
        .map_err(|e| format!("not a receipt: {e}"))?;
    Ok(ReceiptInput {
        facts: ReceiptFacts {
            receiving_creditor: asked.creditor_fiscal_code.clone(),
            primitive: ReceiptPrimitive::BizEvents,
            creditor_fiscal_code,
            notice: NoticeNumber::parse(&notice_number).ok(),
            notice_number,
            iuv,
            receipt_id,
            outcome,
            psp_id: required(receipt.id_psp, "idPSP")?,
            channel_id: required(receipt.id_channel, "idChannel")?,
            payment_amount_cents,
            fee_cents,
            payment_date_time,
            paid_at,
            // biz-events does not say; a Stand-In payment's FdR line (code 4) is an ordinary
            // paid line for reconciliation anyway.
            stand_in: false,
            transfers,
        },
        canonical,
        raw: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn asked() -> ReceiptRequest {
        ReceiptRequest {
            creditor_fiscal_code: "01199250158".into(),
            receipt_id: "IUR-0001".into(),
            iuv: "01000000000000042".into(),
        }
    }

    fn body(amount: &str, transfers: &str) -> Vec<u8> {
        format!(
            r#"{{"receiptId":"IUR-0001","noticeNumber":"301000000000000042",
            "fiscalCode":"01199250158","outcome":"OK","creditorReferenceId":"01000000000000042",
            "paymentAmount":{amount},"description":"TARI","companyName":"Comune di Milano",
            "debtor":{{"entityUniqueIdentifierType":"F","entityUniqueIdentifierValue":"RSSMRA80A01F205X","fullName":"Mario Rossi"}},
            "transferList":[{transfers}],"idPSP":"BCITITMM","pspCompanyName":"Intesa",
            "idChannel":"BCITITMM_01","fee":1.5,"paymentDateTime":"2026-11-20T10:15:00"}}"#
        )
        .into_bytes()
    }

    const TWO: &str = r#"{"idTransfer":1,"transferAmount":95.05,"fiscalCodePA":"01199250158","iban":"IT60X0542811101000000123456","mbdAttachment":"","remittanceInformation":"TARI","transferCategory":"9/0101100IM/"},
        {"idTransfer":2,"transferAmount":4.95,"fiscalCodePA":"08911820960","iban":"IT02A0306909606100000046017","mbdAttachment":"","remittanceInformation":"TEFA","transferCategory":"9/0201133IM/"}"#;

    #[test]
    fn a_receipt_reads_into_the_facts_the_node_would_give() {
        let input = read_receipt(&asked(), &body("100", TWO)).unwrap();
        let f = &input.facts;
        assert_eq!(f.primitive, ReceiptPrimitive::BizEvents);
        assert_eq!(f.receiving_creditor, "01199250158");
        assert_eq!(f.creditor_fiscal_code, "01199250158");
        assert_eq!(f.notice_number, "301000000000000042");
        assert_eq!(f.iuv, "01000000000000042");
        assert_eq!(f.receipt_id, "IUR-0001");
        assert_eq!(f.outcome, NodeOutcome::Ok);
        assert_eq!(f.psp_id, "BCITITMM");
        assert_eq!(f.channel_id, "BCITITMM_01");
        assert_eq!(f.payment_amount_cents, 10_000);
        assert_eq!(f.fee_cents, Some(150));
        // Zone-less: Rome wall-clock time (winter, UTC+1).
        assert_eq!(f.paid_at, Some(datetime!(2026-11-20 09:15 UTC)));
        let amounts: Vec<(u8, &str, i64)> = f
            .transfers
            .iter()
            .map(|t| (t.id_transfer, t.beneficiary.as_str(), t.amount_cents))
            .collect();
        assert_eq!(amounts, [(1, "01199250158", 9505), (2, "08911820960", 495)]);
        assert_eq!(input.raw, body("100", TWO));
    }

    #[test]
    fn the_same_receipt_written_otherwise_has_the_same_canonical_form() {
        let a = read_receipt(&asked(), &body("100", TWO)).unwrap();
        let spaced = String::from_utf8(body("100", TWO))
            .unwrap()
            .replace(',', " ,");
        let b = read_receipt(&asked(), spaced.as_bytes()).unwrap();
        assert_eq!(a.canonical, b.canonical);
        let c = read_receipt(&asked(), &body("100.00", TWO)).unwrap();
        assert_eq!(c.facts.payment_amount_cents, 10_000);
    }

    #[test]
    fn another_payment_or_a_bad_field_is_refused_by_name() {
        let other = ReceiptRequest {
            receipt_id: "IUR-0002".into(),
            ..asked()
        };
        let error = read_receipt(&other, &body("100", TWO)).unwrap_err();
        assert!(error.contains("not of the one asked"), "{error}");
        let error = read_receipt(&asked(), &body("100.001", TWO)).unwrap_err();
        assert!(error.contains("paymentAmount"), "{error}");
        let error = read_receipt(
            &asked(),
            &body(
                "100",
                &TWO.replace("\"transferAmount\":4.95", "\"transferAmount\":\"x\""),
            ),
        )
        .unwrap_err();
        assert!(error.contains("transferList[1].transferAmount"), "{error}");
        let stranger = ReceiptRequest {
            creditor_fiscal_code: "80016350821".into(),
            ..asked()
        };
        let error = read_receipt(&stranger, &body("100", TWO)).unwrap_err();
        assert!(error.contains("pays nothing to 80016350821"), "{error}");
        let error = read_receipt(&asked(), b"<html>").unwrap_err();
        assert!(error.contains("not a receipt"), "{error}");
    }
}
