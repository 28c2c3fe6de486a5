//! Receipts as paSendRT and paSendRTV2 carry them: every field of `ctReceipt` /
//! `ctReceiptV2` read and checked, the request-level `standin` of SANP 3.6.0 combined with
//! the receipt's `standIn`, and the canonical form that tells a redelivery from a conflict.
//! Unknown elements are skipped and noted (see [`Fields::lenient`]): a receipt is never refused
//! for a field a later SANP version added.

use incasso_domain::notice_number::NoticeNumber;
use incasso_domain::receipt::NodeOutcome;
use time::OffsetDateTime;

use super::fields::Fields;
use super::payment::Header;
use super::{Operation, Request, SyntaxError};

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
    /// NAV, as sent (18 digits).
    pub notice_number: String,
    /// The NAV as a notice number, or `None` when its check digits are wrong: a receipt is
    /// never refused for that (the money was taken), so the text above is what is kept.
    #[serde(skip)]
    pub notice: Option<NoticeNumber>,
    /// The notice's creditor.
    pub fiscal_code: String,
    /// Paid or not.
    pub outcome: NodeOutcome,
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
    /// When the payment was made, as sent (the store keeps the text).
    pub payment_date_time: Option<String>,
    /// When the payment was made: as given when the text has `Z` or an offset, read as
    /// Europe/Rome wall-clock time when it has none (as PagoPA writes it; see
    /// [`from_rome_local`](incasso_domain::rome_time::from_rome_local) for the two hours a
    /// year that are ambiguous).
    #[serde(skip)]
    pub paid_at: Option<OffsetDateTime>,
    /// PSP booking date.
    pub application_date: Option<String>,
    /// Date the PSP must credit by.
    pub transfer_date: Option<String>,
    /// The receipt's metadata (the activation's, echoed), in order.
    pub metadata: Vec<MapEntry>,
    /// Paid in Stand-In (absent means false).
    pub stand_in: bool,
    /// Elements added by a later SANP version, skipped but part of the canonical form. Left
    /// out of it when there are none, so receipts stored before this field existed keep
    /// their canonical form and their redeliveries are still recognised.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub later_version_fields: Vec<super::fields::LaterVersionField>,
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

pub(super) fn receipt(fields: &mut Fields<'_>, v2: bool) -> Result<Receipt, SyntaxError> {
    let element = fields.element("receipt")?;
    let path = fields.field("receipt");
    let mut r = fields.within(element, &path)?;
    let receipt_id = r.text("receiptId", 1, incasso_domain::ledger::RECEIPT_ID_MAX_CHARS)?;
    let notice_number = r.digits("noticeNumber", 18)?;
    let fiscal_code = r.digits("fiscalCode", 11)?;
    let outcome = NodeOutcome::parse(&r.text("outcome", 2, 2)?)
        .ok_or_else(|| SyntaxError::invalid(format!("{path}.outcome"), "must be OK or KO"))?;
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
    let (payment_date_time, paid_at) = r.date_time("paymentDateTime")?.unzip();
    let application_date = r.date("applicationDate")?;
    let transfer_date = r.date("transferDate")?;
    let metadata = metadata(&mut r)?;
    let stand_in = r.boolean("standIn")?.unwrap_or(false);
    r.finish()?;
    Ok(Receipt {
        receipt_id,
        notice: NoticeNumber::parse(&notice_number).ok(),
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
        paid_at,
        application_date,
        transfer_date,
        metadata,
        stand_in,
        later_version_fields: Vec::new(),
    })
}

/// The rest of a paSendRT(V2) request after its header.
pub(super) fn send_rt(
    fields: &mut Fields<'_>,
    header: Header,
    operation: Operation,
) -> Result<Request, SyntaxError> {
    let mut receipt = receipt(fields, operation == Operation::SendRtV2)?;
    // SANP 3.6.0 put `standin` on the request, SANP 3.9.0 moved it into the receipt as
    // `standIn`: a Node on either version may send either, and either one true means the
    // payment was authorised in Stand-In.
    receipt.stand_in |= fields.boolean("standin")?.unwrap_or(false);
    Ok(Request::SendRt(
        Box::new(SendRtRequest {
            header,
            receipt,
            unknown_elements: Vec::new(),
        }),
        operation,
    ))
}

#[cfg(test)]
mod tests {
    use crate::message::test_support::*;
    use crate::message::*;
    use crate::xml::Limits;

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
            .replace(
                "</receipt>",
                "</receipt><nodeVersion since=\"3.14\">4.0</nodeVersion>",
            )
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
        // The known fields are read as in the original; the unknown ones count in the
        // canonical form, so a redelivery that changes one of them is a conflict, while the
        // same message laid out differently is the same receipt.
        let mut known = send.receipt.clone();
        known.later_version_fields.clear();
        assert_eq!(known, receipt_of(&original));
        assert_ne!(send.receipt.canonical(), receipt_of(&original).canonical());
        let changed = extended.replace("<given>RSSMRA80A01F205X</given>", "<given>X</given>");
        assert_ne!(
            send_rt_of(&changed).receipt.canonical(),
            send.receipt.canonical()
        );
        let relaid = extended.replace("<payerConsent><given>", "<payerConsent>\n      <given>");
        assert_eq!(
            send_rt_of(&relaid).receipt.canonical(),
            send.receipt.canonical()
        );
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
    fn a_receipt_carries_typed_outcome_instant_and_notice_number() {
        use incasso_domain::receipt::NodeOutcome;
        use time::macros::datetime;
        let receipt = receipt_of(&receipt_v2("Retta", 1, ""));
        assert_eq!(receipt.outcome, NodeOutcome::Ok);
        assert_eq!(
            receipt.payment_date_time.as_deref(),
            Some("2026-11-20T10:15:00")
        );
        // Zone-less: Rome time, winter (+01:00).
        assert_eq!(receipt.paid_at, Some(datetime!(2026-11-20 09:15 UTC)));
        assert_eq!(
            receipt.notice.as_ref().map(|n| n.as_str()),
            Some("312000000001234587")
        );
        let ko = receipt_of(&receipt_v2("Retta", 1, "").replace(">OK<", ">KO<"));
        assert_eq!(ko.outcome, NodeOutcome::Ko);
        let zoned = receipt_of(
            &receipt_v2("Retta", 1, "")
                .replace("2026-11-20T10:15:00<", "2026-11-20T10:15:00.250Z<"),
        );
        assert_eq!(zoned.paid_at, Some(datetime!(2026-11-20 10:15:00.25 UTC)));
        assert_eq!(
            zoned.payment_date_time.as_deref(),
            Some("2026-11-20T10:15:00.250Z")
        );
        let undated = receipt_of(
            &receipt_v2("Retta", 1, "")
                .replace("<paymentDateTime>2026-11-20T10:15:00</paymentDateTime>", ""),
        );
        assert_eq!((undated.payment_date_time, undated.paid_at), (None, None));
        // Wrong check digits: still a receipt, with the number as sent and no typed one.
        let wrong_check = receipt_of(
            &receipt_v2("Retta", 1, "").replace("312000000001234587", "312000000001234500"),
        );
        assert_eq!(wrong_check.notice_number, "312000000001234500");
        assert_eq!(wrong_check.notice, None);
        // A date and time the XSD refuses is refused, naming the field.
        let (field, message) = field_error(parse_request(
            receipt_v2("Retta", 1, "")
                .replace("2026-11-20T10:15:00<", "2026-11-20 10:15<")
                .as_bytes(),
            Limits::default(),
        ));
        assert_eq!(field, "paSendRTV2Request.receipt.paymentDateTime");
        assert!(message.contains("2026-11-20 10:15"), "{message}");
    }

    /// The canonical form is what stored receipts' keyed hashes were computed over: the
    /// typed additions must not change it, or every redelivery of an earlier receipt would
    /// become a conflict.
    #[test]
    fn the_canonical_form_keeps_its_shape() {
        let receipt = receipt_of(&receipt_v2("Retta", 1, ""));
        let json: serde_json::Value = serde_json::from_slice(&receipt.canonical()).unwrap();
        let object = json.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut expected = vec![
            "receipt_id",
            "notice_number",
            "fiscal_code",
            "outcome",
            "creditor_reference_id",
            "payment_amount_cents",
            "description",
            "company_name",
            "office_name",
            "debtor",
            "transfers",
            "id_psp",
            "psp_fiscal_code",
            "psp_partita_iva",
            "psp_company_name",
            "id_channel",
            "channel_description",
            "payer",
            "payment_method",
            "payment_note",
            "fee_cents",
            "primary_ci_incurred_fee_cents",
            "id_bundle",
            "id_ci_bundle",
            "payment_date_time",
            "application_date",
            "transfer_date",
            "metadata",
            "stand_in",
        ];
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(object["outcome"], "OK");
        assert_eq!(object["notice_number"], "312000000001234587");
        assert_eq!(object["payment_date_time"], "2026-11-20T10:15:00");
        // Field order is part of the bytes: the struct's declaration order, as before.
        let text = String::from_utf8(receipt.canonical()).unwrap();
        assert!(text.starts_with(
            "{\"receipt_id\":\"c3e7d4b2a1f04e6d9b8a7c6d5e4f3a2b\",\"notice_number\":\"312000000001234587\",\"fiscal_code\":\"01199250158\",\"outcome\":\"OK\","
        ), "{text}");
    }
}
