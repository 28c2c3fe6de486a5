//! The XSD-shaped field reader: the children of one element are read by name, each at most
//! once unless asked, with the XSD's lengths, patterns and types (digits, `stAmount`, dates,
//! booleans, base64), refusing namespace-qualified children and attributes the schema does
//! not declare, and (strict) unknown children. Every refusal names the field by its path.

use std::cell::RefCell;

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{SyntaxError, XSI_NS};
use crate::xml::{self, Element};

/// How an attribute is named in a refusal: its local name, and its namespace when it has
/// one (prefixes are the sender's choice, the namespace is what the schema judges).
pub(super) fn attribute_name(attribute: &xml::Attribute) -> String {
    match &attribute.namespace {
        Some(namespace) => format!("'{}' (namespace {namespace})", attribute.name),
        None => format!("'{}'", attribute.name),
    }
}

/// The paForNode XSD declares no attribute on any of its elements, so only what every
/// schema processor accepts everywhere is let through: the `xsi:schemaLocation` and
/// `xsi:noNamespaceSchemaLocation` hints. (`xsi:type` and `xsi:nil` are refused: no element
/// is nillable and no type is derived, so they could only say something the XSD refuses.)
pub(super) fn check_payload_attributes(element: &Element, path: &str) -> Result<(), SyntaxError> {
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

/// The instant an `xsd:dateTime` names: `YYYY-MM-DDThh:mm:ss`, optional fractional seconds
/// (kept to the nanosecond), optional zone `Z` or `+hh:mm`/`-hh:mm` (at most 14:00). With a
/// zone the instant is the one given; without, it is Europe/Rome wall-clock time, as PagoPA
/// writes it. `24:00:00` is the first instant of the next day, as XSD says. Years are four
/// digits (XSD would allow more; no payment is made after 9999).
pub(super) fn xsd_date_time(text: &str) -> Option<OffsetDateTime> {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<u32> {
        let digits = bytes.get(from..to)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|(at, c)| bytes.get(*at) != Some(c)) {
        return None;
    }
    let year = i32::try_from(number(0, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(number(5, 7)?).ok()?).ok()?;
    let day = u8::try_from(number(8, 10)?).ok()?;
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Beyond nanoseconds the digits are dropped: no clock measures them.
        let kept = format!("{:0<9}", &fraction[..digits.min(9)]);
        nanos = kept.parse().ok()?;
        rest = &fraction[digits..];
    }
    let zone = match rest {
        "" => None,
        "Z" => Some(UtcOffset::UTC),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = rest.as_bytes();
            if zone.len() != 6 || zone[3] != b':' {
                return None;
            }
            let digits = |at: usize| {
                let (a, b) = (zone[at], zone[at + 1]);
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i8::try_from((a - b'0') * 10 + (b - b'0')).ok())
                    .flatten()
            };
            let (hours, minutes) = (digits(1)?, digits(4)?);
            if minutes > 59 || hours > 14 || (hours == 14 && minutes > 0) {
                return None;
            }
            Some(UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?)
        }
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let local = if hour == 24 {
        if minute != 0 || second != 0 || nanos != 0 {
            return None;
        }
        PrimitiveDateTime::new(date, Time::MIDNIGHT) + Duration::days(1)
    } else {
        let time = Time::from_hms_nano(
            u8::try_from(hour).ok()?,
            u8::try_from(minute).ok()?,
            u8::try_from(second).ok()?,
            nanos,
        )
        .ok()?;
        PrimitiveDateTime::new(date, time)
    };
    Some(match zone {
        Some(offset) => local.assume_offset(offset),
        None => incasso_domain::rome_time::from_rome_local(local),
    })
}

/// Reads the children of one element, each at most once unless asked, refusing
/// namespace-qualified ones. A child no field asks for is refused ([`Fields::finish`]), except
/// in a receipt, where it is noted and skipped: a later SANP version may add fields, and a
/// receipt must never be refused for one.
pub(super) struct Fields<'a> {
    element: &'a Element,
    path: String,
    taken: Vec<bool>,
    /// Where unknown children are noted (receipts), or `None` when they are refused.
    unknown: Option<&'a RefCell<Vec<LaterVersionField>>>,
}

/// An element this version does not know, kept so that it counts in the receipt's canonical
/// form: a redelivery that changes only such an element is a conflict, not the same receipt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaterVersionField {
    /// Its path (`paSendRTV2Request.receipt.payerConsent`); names only, safe to log.
    pub path: String,
    /// Its content, written the same way however the XML was laid out: names, attribute
    /// names, trimmed text and children, in order. May hold personal data: never logged.
    pub content: serde_json::Value,
}

/// The layout-independent content of `element`.
fn content_of(element: &Element) -> serde_json::Value {
    serde_json::json!({
        "name": element.name,
        "attributes": element.attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        "text": element.text.trim(),
        "children": element.children.iter().map(content_of).collect::<Vec<_>>(),
    })
}

impl<'a> Fields<'a> {
    /// Strict: unknown children are refused.
    pub(super) fn new(element: &'a Element, path: &str) -> Result<Self, SyntaxError> {
        Self::with_mode(element, path, None)
    }

    /// Lenient: unknown children, here and in every element read through
    /// [`Fields::within`], are noted in `unknown` by path.
    pub(super) fn lenient(
        element: &'a Element,
        path: &str,
        unknown: &'a RefCell<Vec<LaterVersionField>>,
    ) -> Result<Self, SyntaxError> {
        Self::with_mode(element, path, Some(unknown))
    }

    /// The fields of a child element, read in the same mode.
    pub(super) fn within(&self, element: &'a Element, path: &str) -> Result<Self, SyntaxError> {
        Self::with_mode(element, path, self.unknown)
    }

    fn with_mode(
        element: &'a Element,
        path: &str,
        unknown: Option<&'a RefCell<Vec<LaterVersionField>>>,
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

    pub(super) fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// Every child called `name`, each checked for attributes the schema does not allow.
    pub(super) fn all(&mut self, name: &str) -> Result<Vec<&'a Element>, SyntaxError> {
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

    pub(super) fn optional_element(
        &mut self,
        name: &str,
    ) -> Result<Option<&'a Element>, SyntaxError> {
        let found = self.all(name)?;
        if found.len() > 1 {
            return Err(SyntaxError::invalid(
                self.field(name),
                "appears more than once",
            ));
        }
        Ok(found.into_iter().next())
    }

    pub(super) fn element(&mut self, name: &str) -> Result<&'a Element, SyntaxError> {
        self.optional_element(name)?
            .ok_or_else(|| SyntaxError::invalid(self.field(name), "missing"))
    }

    pub(super) fn optional_text(
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

    pub(super) fn text(
        &mut self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<String, SyntaxError> {
        self.optional_text(name, min, max)?
            .ok_or_else(|| SyntaxError::invalid(self.field(name), "missing"))
    }

    pub(super) fn digits(&mut self, name: &str, length: usize) -> Result<String, SyntaxError> {
        let text = self.text(name, length, length)?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SyntaxError::invalid(
                self.field(name),
                format!("must be {length} digits"),
            ));
        }
        Ok(text)
    }

    pub(super) fn amount(
        &mut self,
        name: &str,
        required: bool,
    ) -> Result<Option<i64>, SyntaxError> {
        let text = self.optional_text(name, 1, 20)?;
        match text {
            None if required => Err(SyntaxError::invalid(self.field(name), "missing")),
            None => Ok(None),
            Some(text) => incasso_domain::money::parse_st_amount_cents(&text)
                .map(Some)
                .map_err(|e| SyntaxError::invalid(self.field(name), e.to_string())),
        }
    }

    pub(super) fn date(&mut self, name: &str) -> Result<Option<String>, SyntaxError> {
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

    /// An `xsd:dateTime`: the text as sent and the instant it names (see [`xsd_date_time`]).
    pub(super) fn date_time(
        &mut self,
        name: &str,
    ) -> Result<Option<(String, OffsetDateTime)>, SyntaxError> {
        let Some(text) = self.optional_text(name, 1, 64)? else {
            return Ok(None);
        };
        match xsd_date_time(&text) {
            Some(instant) => Ok(Some((text, instant))),
            None => Err(SyntaxError::invalid(
                self.field(name),
                format!("'{text}' is not a date and time (YYYY-MM-DDThh:mm:ss[.s][Z|+hh:mm])"),
            )),
        }
    }

    /// An `xsd:base64Binary` (required): groups of four base64 characters, white space
    /// anywhere, `=` padding only at the end; empty is a valid (empty) value. Not decoded:
    /// the content is only checked.
    pub(super) fn base64(&mut self, name: &str) -> Result<(), SyntaxError> {
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

    pub(super) fn boolean(&mut self, name: &str) -> Result<Option<bool>, SyntaxError> {
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
    pub(super) fn finish(self) -> Result<(), SyntaxError> {
        let mut unread = self
            .taken
            .iter()
            .zip(&self.element.children)
            .filter(|(taken, _)| !**taken)
            .map(|(_, child)| LaterVersionField {
                path: format!(
                    "{}.{}",
                    self.path,
                    child.name.chars().take(100).collect::<String>()
                ),
                content: content_of(child),
            });
        match self.unknown {
            Some(unknown) => {
                unknown.borrow_mut().extend(unread);
                Ok(())
            }
            None => match unread.next() {
                Some(field) => Err(SyntaxError::invalid(
                    field.path,
                    "is not a field of this message",
                )),
                None => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::message::test_support::*;
    use crate::message::*;
    use crate::xml::Limits;

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
    fn xsd_date_times_name_their_instant() {
        use crate::message::fields::xsd_date_time;
        use time::macros::datetime;
        for (text, instant) in [
            // Zone-less: Rome wall-clock time, winter and summer.
            ("2026-11-20T10:15:00", datetime!(2026-11-20 09:15 UTC)),
            ("2021-03-25T17:48:22", datetime!(2021-03-25 16:48:22 UTC)),
            ("2026-07-20T10:15:00", datetime!(2026-07-20 08:15 UTC)),
            // With a zone: as given.
            ("2026-11-20T10:15:00Z", datetime!(2026-11-20 10:15 UTC)),
            ("2026-11-20T10:15:00+05:30", datetime!(2026-11-20 04:45 UTC)),
            ("2026-11-20T10:15:00-14:00", datetime!(2026-11-21 00:15 UTC)),
            (
                "2026-11-20T10:15:00.123456789123+01:00",
                datetime!(2026-11-20 09:15:00.123456789 UTC),
            ),
            (
                "2026-11-20T10:15:00.5",
                datetime!(2026-11-20 09:15:00.5 UTC),
            ),
            ("2026-12-31T24:00:00Z", datetime!(2027-01-01 00:00 UTC)),
            // The March gap moves forward, the October overlap takes summer time.
            ("2026-03-29T02:30:00", datetime!(2026-03-29 01:30 UTC)),
            ("2026-10-25T02:30:00", datetime!(2026-10-25 00:30 UTC)),
        ] {
            assert_eq!(xsd_date_time(text), Some(instant), "{text}");
        }
        for text in [
            "2026-11-20",
            "2026-11-20 10:15:00",
            "2026-11-20T10:15",
            "2026-02-30T10:15:00",
            "2026-11-20T25:00:00",
            "2026-11-20T24:00:01",
            "2026-11-20T10:60:00",
            "2026-11-20T10:15:00.",
            "2026-11-20T10:15:00+1:00",
            "2026-11-20T10:15:00+14:30",
            "2026-11-20T10:15:00 Z",
            "+2026-11-20T10:15:00",
            "２026-11-20T10:15:00",
        ] {
            assert_eq!(xsd_date_time(text), None, "{text}");
        }
    }
}
