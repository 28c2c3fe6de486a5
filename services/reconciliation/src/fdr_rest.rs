//! A reporting flow revision as the FdR REST API serves it (`pagopa-fdr.org.openapi.json`):
//! the header (`SingleFlowResponse`) and the pages of its payments
//! (`PaginatedPaymentsResponse`), read into the same records as a `FlussoRiversamento`, so a
//! flow fetched over REST is the same evidence as the XML file. Amounts are typed as JSON
//! doubles by the API; they are read from the number's text into exact cents, never through
//! a float. Every field the contract needs is required and checked; the declared count must
//! equal the payments fetched (a page missed is refused, and fetched again at the next poll),
//! and a declared total that differs from them is kept as declared, as for XML.

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{FlowId, FlowLine, OutcomeCode, TransferIndex, TransferKey};
use incasso_domain::rome_time::rome_date;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::Date;

use crate::document::{DocumentKind, FlowHeader, Sink};
use crate::error::FormatError;
use crate::values::{cents, date, date_of_date_time, date_time, shown};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sender {
    psp_id: Option<String>,
    psp_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receiver {
    organization_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header<'a> {
    status: Option<String>,
    revision: Option<i64>,
    fdr: Option<String>,
    fdr_date: Option<String>,
    regulation: Option<String>,
    regulation_date: Option<String>,
    bic_code_pouring_bank: Option<String>,
    sender: Option<Sender>,
    receiver: Option<Receiver>,
    tot_payments: Option<i64>,
    #[serde(borrow)]
    sum_payments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payment<'a> {
    index: Option<i64>,
    iuv: Option<String>,
    iur: Option<String>,
    id_transfer: Option<i64>,
    #[serde(borrow)]
    pay: Option<&'a RawValue>,
    pay_status: Option<String>,
    pay_date: Option<String>,
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    data: Option<Vec<Payment<'a>>>,
}

/// The name a REST flow revision goes by in messages and in the document list:
/// `fdr-rest:ORGANIZATION/FDR/revisions/N/psps/PSP`, like the API's path.
pub fn fdr_rest_document_name(organization: &str, fdr: &str, revision: u32, psp: &str) -> String {
    format!("fdr-rest:{organization}/{fdr}/revisions/{revision}/psps/{psp}")
}

/// A JSON number's text (or a string holding one) into cents: `100.95`, `100`, `1.0095E2`.
/// A fraction of a cent is refused, never rounded.
pub fn json_amount_cents(raw: &str) -> Result<i64, String> {
    let text = raw.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let Some(split) = text.find(['e', 'E']) else {
        return cents(text);
    };
    let (mantissa, exponent) = (&text[..split], &text[split + 1..]);
    let exponent: i32 = exponent
        .strip_prefix('+')
        .unwrap_or(exponent)
        .parse()
        .map_err(|_| format!("'{}' is not an amount in euro", shown(text)))?;
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (units, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if units.is_empty()
        || !units
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!("'{}' is not an amount in euro", shown(text)));
    }
    // digits × 10^(exponent − fraction digits) euro = digits × 10^(exponent − fraction + 2) cents.
    let digits = format!("{units}{fraction}");
    let shift = i64::from(exponent) - i64::try_from(fraction.len()).unwrap_or(i64::MAX) + 2;
    let digits = digits.trim_start_matches('0');
    let value = if shift >= 0 {
        let zeros = usize::try_from(shift).unwrap_or(usize::MAX);
        if digits.len().saturating_add(zeros) > 17 {
            return Err(format!("'{}' is too large an amount", shown(text)));
        }
        format!("{digits}{}", "0".repeat(zeros))
    } else {
        let cut = usize::try_from(-shift).unwrap_or(usize::MAX);
        if cut >= digits.len() {
            if digits.bytes().any(|b| b != b'0') {
                return Err(format!("'{}' has a fraction of a cent", shown(text)));
            }
            String::new()
        } else {
            let (kept, dropped) = digits.split_at(digits.len() - cut);
            if dropped.bytes().any(|b| b != b'0') {
                return Err(format!("'{}' has a fraction of a cent", shown(text)));
            }
            if kept.len() > 17 {
                return Err(format!("'{}' is too large an amount", shown(text)));
            }
            kept.to_owned()
        }
    };
    let value: i64 = if value.is_empty() {
        0
    } else {
        value
            .parse()
            .map_err(|_| format!("'{}' is too large an amount", shown(text)))?
    };
    Ok(if negative { -value } else { value })
}

/// A `LocalDate`, or (since SANP 3.10) a date-time whose day is taken as written.
fn local_date(text: &str) -> Result<Date, String> {
    if text.len() > 10 {
        date_of_date_time(text)
    } else {
        date(text)
    }
}

/// An `Instant` payment time into the Rome day of payment; a plain date is taken as is.
fn pay_day(text: &str) -> Result<Date, String> {
    if text.len() > 10 {
        date_time(text).map(rome_date)
    } else {
        date(text)
    }
}

fn text35(value: Option<String>, field: &str) -> Result<String, String> {
    let value = value.ok_or_else(|| format!("{field} is missing"))?;
    let length = value.chars().count();
    if (1..=35).contains(&length) {
        Ok(value)
    } else {
        Err(format!("{field} must be 1 to 35 characters, got {length}"))
    }
}

/// Reads one flow revision: `header` is the body of
/// `GET …/fdrs/{fdr}/revisions/{revision}/psps/{pspId}`, `pages` the bodies of its
/// `…/payments` pages in order. The records go to `sink`; `name` names the document in
/// errors (see [`fdr_rest_document_name`]).
pub fn read_fdr_rest(
    name: &str,
    header: &[u8],
    pages: &[Vec<u8>],
    sink: &mut dyn Sink,
) -> Result<(), FormatError> {
    let refuse = |element: String, reason: String| FormatError {
        file: name.to_owned(),
        line: 1,
        element,
        reason,
    };
    let head: Header<'_> = serde_json::from_slice(header).map_err(|e| {
        refuse(
            "header".into(),
            format!("not a flow (SingleFlowResponse): {e}"),
        )
    })?;
    let field = |f: &str| format!("header.{f}");
    sink.kind(DocumentKind::FdrRest)
        .map_err(|r| refuse("header".into(), r))?;
    match head.status.as_deref() {
        Some("PUBLISHED") => {}
        other => {
            return Err(refuse(
                field("status"),
                format!(
                    "the flow is {}, not PUBLISHED",
                    other
                        .map(shown)
                        .unwrap_or_else(|| "without a status".into())
                ),
            ));
        }
    }
    let revision = head
        .revision
        .and_then(|r| u32::try_from(r).ok())
        .filter(|r| *r >= 1)
        .ok_or_else(|| {
            refuse(
                field("revision"),
                "a revision of at least 1 is required".into(),
            )
        })?;
    let flow_id = FlowId::parse(head.fdr.as_deref().unwrap_or_default())
        .map_err(|e| refuse(field("fdr"), e.to_string()))?;
    let created_at = date_time(head.fdr_date.as_deref().unwrap_or_default())
        .map_err(|e| refuse(field("fdrDate"), e))?;
    let trn = text35(head.regulation, "regulation").map_err(|e| refuse(field("regulation"), e))?;
    let regulation_date = local_date(head.regulation_date.as_deref().unwrap_or_default())
        .map_err(|e| refuse(field("regulationDate"), e))?;
    let sender = head.sender.unwrap_or(Sender {
        psp_id: None,
        psp_name: None,
    });
    let psp_id =
        text35(sender.psp_id, "sender.pspId").map_err(|e| refuse(field("sender.pspId"), e))?;
    let creditor_fiscal_code = text35(
        head.receiver.and_then(|r| r.organization_id),
        "receiver.organizationId",
    )
    .map_err(|e| refuse(field("receiver.organizationId"), e))?;
    let line_count = head
        .tot_payments
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            refuse(
                field("totPayments"),
                "a count of at least 1 is required".into(),
            )
        })?;
    let total_cents = head
        .sum_payments
        .ok_or_else(|| "sumPayments is missing".to_owned())
        .and_then(|raw| json_amount_cents(raw.get()))
        .map_err(|e| refuse(field("sumPayments"), e))?;
    let bic = match head.bic_code_pouring_bank {
        Some(bic) => Some(
            text35(Some(bic), "bicCodePouringBank")
                .map_err(|e| refuse(field("bicCodePouringBank"), e))?,
        ),
        None => None,
    };
    let flow = FlowHeader {
        flow_id,
        revision: Some(revision),
        created_at,
        trn,
        regulation_date,
        psp_id,
        psp_name: sender.psp_name,
        bic,
        creditor_fiscal_code,
        line_count,
        total_cents,
    };
    sink.flow(&flow).map_err(|r| refuse("header".into(), r))?;

    let mut lines: Vec<(i64, FlowLine)> = Vec::new();
    // The indexes seen: a flow of a busy day's PSP has a hundred thousand payments, too many
    // to compare each with every earlier one.
    let mut indexes: std::collections::HashSet<i64> = std::collections::HashSet::new();
    for (n, body) in pages.iter().enumerate() {
        let page_name = format!("payments page {}", n + 1);
        let page: Page<'_> = serde_json::from_slice(body).map_err(|e| {
            refuse(
                page_name.clone(),
                format!("not a page of payments (PaginatedPaymentsResponse): {e}"),
            )
        })?;
        for (i, payment) in page.data.unwrap_or_default().into_iter().enumerate() {
            let at = |f: &str| format!("{page_name}: data[{i}].{f}");
            let index = payment
                .index
                .filter(|n| *n >= 1)
                .ok_or_else(|| refuse(at("index"), "an index of at least 1 is required".into()))?;
            let iuv = Iuv::parse(payment.iuv.as_deref().unwrap_or_default()).map_err(|_| {
                refuse(
                    at("iuv"),
                    format!(
                        "'{}' is not an IUV (1 to 35 letters and digits)",
                        shown(payment.iuv.as_deref().unwrap_or_default())
                    ),
                )
            })?;
            let iur = text35(payment.iur, "iur").map_err(|e| refuse(at("iur"), e))?;
            let transfer = TransferIndex::new(
                payment
                    .id_transfer
                    .ok_or_else(|| refuse(at("idTransfer"), "idTransfer is missing".into()))?,
            )
            .map_err(|e| refuse(at("idTransfer"), e.to_string()))?;
            let key = TransferKey::new(iuv, &iur, transfer)
                .map_err(|e| refuse(at("iur"), e.to_string()))?;
            let amount_cents = payment
                .pay
                .ok_or_else(|| "pay is missing".to_owned())
                .and_then(|raw| json_amount_cents(raw.get()))
                .map_err(|e| refuse(at("pay"), e))?;
            let outcome =
                OutcomeCode::parse_pay_status(payment.pay_status.as_deref().unwrap_or_default())
                    .map_err(|e| refuse(at("payStatus"), e.to_string()))?;
            let paid_on = pay_day(payment.pay_date.as_deref().unwrap_or_default())
                .map_err(|e| refuse(at("payDate"), e))?;
            if !indexes.insert(index) {
                return Err(refuse(
                    at("index"),
                    format!("index {index} appears twice in the flow"),
                ));
            }
            lines.push((
                index,
                FlowLine {
                    key,
                    amount_cents,
                    outcome,
                    paid_on,
                },
            ));
        }
    }
    if u64::try_from(lines.len()).ok() != Some(line_count) {
        return Err(refuse(
            field("totPayments"),
            format!(
                "totPayments says {line_count}, the pages hold {} payments",
                lines.len()
            ),
        ));
    }
    // A `sumPayments` that differs from the payments is kept as declared, as an XML flow's
    // total is (the import warns of it); a count that differs means pages were missed.
    // The index is the payment's position in the flow: lines are stored in that order.
    lines.sort_by_key(|(index, _)| *index);
    for (_, line) in lines {
        sink.flow_line(line)
            .map_err(|r| refuse("payments".into(), r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Collected;
    use proptest::prelude::*;

    #[test]
    fn amounts_from_json_numbers() {
        assert_eq!(json_amount_cents("100.95"), Ok(10_095));
        assert_eq!(json_amount_cents("100"), Ok(10_000));
        assert_eq!(json_amount_cents("\"0.01\""), Ok(1));
        assert_eq!(json_amount_cents("1.0095E2"), Ok(10_095));
        assert_eq!(json_amount_cents("1.5E7"), Ok(1_500_000_000));
        assert_eq!(json_amount_cents("1E-2"), Ok(1));
        assert_eq!(json_amount_cents("-3.5"), Ok(-350));
        for bad in ["1.001", "1E-3", "abc", "", "1.5e", "1e400"] {
            assert!(json_amount_cents(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Any amount in cents, written as Java writes a double (plain or scientific),
        /// reads back exactly.
        #[test]
        fn amounts_round_trip(c in 0i64..99_999_999_999, scientific in any::<bool>()) {
            let plain = format!("{}.{:02}", c / 100, c % 100);
            let text = if scientific {
                let digits = format!("{c}");
                let exponent = i64::try_from(digits.len()).unwrap() - 1 - 2;
                format!("{}.{}E{exponent}", &digits[..1], if digits.len() > 1 { &digits[1..] } else { "0" })
            } else {
                plain
            };
            prop_assert_eq!(json_amount_cents(&text), Ok(c));
        }
    }

    const HEADER: &str = r#"{"status":"PUBLISHED","revision":2,"fdr":"2026-11-23ABI03069-0001",
        "fdrDate":"2026-11-24T06:00:00Z","regulation":"TRN-1","regulationDate":"2026-11-24",
        "bicCodePouringBank":"BPPIITRRXXX","sender":{"type":"ABI_CODE","id":"ABI03069",
        "pspId":"ABI03069","pspName":"Banca","pspBrokerId":"B","channelId":"C"},
        "receiver":{"id":"R","organizationId":"01199250158","organizationName":"Comune"},
        "totPayments":2,"sumPayments":150.5}"#;

    fn page(data: &str) -> Vec<u8> {
        format!(r#"{{"metadata":{{"pageSize":1,"pageNumber":1,"totPage":2}},"count":1,"data":[{data}]}}"#)
            .into_bytes()
    }

    #[test]
    fn a_revision_reads_into_the_records_of_an_xml_flow() {
        let pages = [
            page(
                r#"{"index":2,"iuv":"99000000000000011","iur":"IUR-2","idTransfer":2,"pay":50.5,"payStatus":"NO_RPT","payDate":"2026-11-23T23:30:00Z"}"#,
            ),
            page(
                r#"{"index":1,"iuv":"99000000000000011","iur":"IUR-1","idTransfer":1,"pay":100,"payStatus":"STAND_IN","payDate":"2026-11-23T10:00:00Z"}"#,
            ),
        ];
        let mut collected = Collected::default();
        read_fdr_rest("f", HEADER.as_bytes(), &pages, &mut collected).unwrap();
        assert_eq!(collected.kind, Some(DocumentKind::FdrRest));
        let (header, lines) = &collected.flows[0];
        assert_eq!(header.revision, Some(2));
        assert_eq!(header.bic.as_deref(), Some("BPPIITRRXXX"));
        assert_eq!(header.total_cents, 15_050);
        assert_eq!(header.creditor_fiscal_code, "01199250158");
        assert_eq!(lines[0].key.receipt_id, "IUR-1");
        assert_eq!(lines[0].outcome, OutcomeCode::StandIn);
        assert_eq!(lines[1].outcome, OutcomeCode::NoRpt);
        // 23:30 UTC is 00:30 of the next day in Rome.
        assert_eq!(lines[1].paid_on, time::macros::date!(2026 - 11 - 24));
        assert_eq!(collected.reporting_flows()[0].revision, 2);
    }

    #[test]
    fn an_index_twice_refuses_the_revision_naming_the_page_and_field() {
        let payment = |index: u32, iur: &str| {
            format!(
                r#"{{"index":{index},"iuv":"99000000000000011","iur":"{iur}","idTransfer":1,"pay":75.25,"payStatus":"EXECUTED","payDate":"2026-11-23T10:00:00Z"}}"#
            )
        };
        let pages = [page(&payment(1, "IUR-1")), page(&payment(1, "IUR-2"))];
        let error =
            read_fdr_rest("f", HEADER.as_bytes(), &pages, &mut Collected::default()).unwrap_err();
        assert!(error.element.contains("index"), "{error:?}");
        assert!(error.element.contains("page 2"), "{error:?}");
        assert_eq!(error.reason, "index 1 appears twice in the flow");
        let pages = [page(&payment(1, "IUR-1")), page(&payment(2, "IUR-2"))];
        read_fdr_rest("f", HEADER.as_bytes(), &pages, &mut Collected::default()).unwrap();
    }

    #[test]
    fn a_declared_sum_other_than_the_payments_is_kept_as_declared() {
        let pages = [
            page(
                r#"{"index":1,"iuv":"99000000000000011","iur":"IUR-1","idTransfer":1,"pay":100,"payStatus":"EXECUTED","payDate":"2026-11-23T10:00:00Z"}"#,
            ),
            page(
                r#"{"index":2,"iuv":"99000000000000011","iur":"IUR-2","idTransfer":2,"pay":50,"payStatus":"EXECUTED","payDate":"2026-11-23T10:00:00Z"}"#,
            ),
        ];
        let mut collected = Collected::default();
        read_fdr_rest("f", HEADER.as_bytes(), &pages, &mut collected).unwrap();
        let flow = &collected.reporting_flows()[0];
        assert_eq!(flow.total_cents, 15_050);
        assert_eq!(flow.lines_cents(), 15_000);
        let warning = flow.total_discrepancy().unwrap();
        assert!(
            warning.contains("15050") && warning.contains("+50 cents"),
            "{warning}"
        );
    }

    #[test]
    fn a_wrong_count_or_field_is_named() {
        let pages = [page(
            r#"{"index":1,"iuv":"99000000000000011","iur":"IUR-1","idTransfer":1,"pay":100,"payStatus":"EXECUTED","payDate":"2026-11-23T10:00:00Z"}"#,
        )];
        let error =
            read_fdr_rest("f", HEADER.as_bytes(), &pages, &mut Collected::default()).unwrap_err();
        assert_eq!(error.element, "header.totPayments", "{error}");
        let pages = [page(
            r#"{"index":1,"iuv":"99000000000000011","iur":"IUR-1","idTransfer":6,"pay":100,"payStatus":"EXECUTED","payDate":"2026-11-23T10:00:00Z"}"#,
        )];
        let error =
            read_fdr_rest("f", HEADER.as_bytes(), &pages, &mut Collected::default()).unwrap_err();
        assert_eq!(
            error.element, "payments page 1: data[0].idTransfer",
            "{error}"
        );
        let draft = HEADER.replace("PUBLISHED", "CREATED");
        let error =
            read_fdr_rest("f", draft.as_bytes(), &[], &mut Collected::default()).unwrap_err();
        assert_eq!(error.element, "header.status", "{error}");
    }
}
