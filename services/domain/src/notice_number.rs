//! Notice numbers (NAV, codice avviso) and IUVs, after PagoPA's SACI specification.
//!
//! A NAV is 18 digits: an aux digit, then a layout that depends on it. incasso issues only
//! aux-digit-3 numbers, `3` + segregation code (2) + base (13) + check digits (2), where the
//! check digits are the number formed by the preceding 16 digits modulo 93. Incoming numbers
//! of every aux digit are accepted (legacy notices, other creditors' notices where Milan is a
//! secondary beneficiary). The IUV is the NAV without its aux digit (and, for aux 0, without
//! the application code).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fiscal_code::OrganizationFiscalCode;
use crate::money::AmountCents;

/// The segregation codes PagoPA reserves for centralised services (SACI, Tabella 1).
pub const RESERVED_SEGREGATION_CODES: [u8; 7] = [47, 81, 85, 96, 97, 98, 99];

/// Why a number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeNumberError {
    /// Not two digits.
    #[error("a segregation code is two digits, got '{0}'")]
    SegregationFormat(String),
    /// One of PagoPA's centralised codes.
    #[error("segregation code {0:02} is reserved by PagoPA for centralised services")]
    ReservedSegregation(u8),
    /// A base over 13 digits.
    #[error("an IUV base has at most 13 digits, got {0}")]
    BaseTooLarge(u64),
    /// Wrong length or non-digits.
    #[error("a notice number is 18 digits, got {0} characters")]
    Length(usize),
    /// Non-digit characters.
    #[error("a notice number has only digits")]
    NotDigits,
    /// Aux digit 4..9.
    #[error("aux digit {0} does not exist: a notice number starts with 0, 1, 2 or 3")]
    AuxDigit(u8),
    /// Check digits do not match.
    #[error("wrong check digits: expected {expected:02}, found {found:02}")]
    CheckDigits {
        /// What the number's digits give.
        expected: u8,
        /// What the number carries.
        found: u8,
    },
    /// Not an IUV.
    #[error("an IUV is 1 to 35 letters and digits")]
    Iuv,
}

/// A segregation code: which IUV-generation point issued a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct SegregationCode(u8);

impl SegregationCode {
    /// 00..=99 except the reserved codes.
    pub fn new(code: u8) -> Result<Self, NoticeNumberError> {
        if code > 99 {
            return Err(NoticeNumberError::SegregationFormat(code.to_string()));
        }
        if RESERVED_SEGREGATION_CODES.contains(&code) {
            return Err(NoticeNumberError::ReservedSegregation(code));
        }
        Ok(Self(code))
    }

    /// Exactly two digits.
    pub fn parse(text: &str) -> Result<Self, NoticeNumberError> {
        if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NoticeNumberError::SegregationFormat(
                text.chars().take(10).collect(),
            ));
        }
        Self::new(
            text.parse()
                .map_err(|_| NoticeNumberError::SegregationFormat(text.to_owned()))?,
        )
    }

    /// The code.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for SegregationCode {
    type Error = NoticeNumberError;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Self::new(code)
    }
}

impl From<SegregationCode> for u8 {
    fn from(code: SegregationCode) -> Self {
        code.0
    }
}

impl fmt::Display for SegregationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// The 13-digit base of an aux-3 IUV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IuvBase(u64);

impl IuvBase {
    /// The largest base.
    pub const MAX: u64 = 9_999_999_999_999;

    /// A base of at most 13 digits.
    pub fn new(base: u64) -> Result<Self, NoticeNumberError> {
        if base > Self::MAX {
            return Err(NoticeNumberError::BaseTooLarge(base));
        }
        Ok(Self(base))
    }

    /// The base.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The decimal number formed by `digits` (at most 19 of them) modulo 93.
pub fn check_digits(digits: &str) -> u8 {
    let remainder = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0u64, |acc, b| (acc * 10 + u64::from(b - b'0')) % 93);
    u8::try_from(remainder).unwrap_or(0)
}

/// An 18-digit notice number (NAV).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NoticeNumber(String);

impl NoticeNumber {
    /// The aux-3 number of `segregation_code` and `base`.
    pub fn issue(segregation_code: SegregationCode, base: IuvBase) -> Self {
        let body = format!("3{segregation_code}{:013}", base.get());
        let check = check_digits(&body);
        Self(format!("{body}{check:02}"))
    }

    /// Parses any aux digit's layout and checks its check digits; ASCII spaces (the printed
    /// groups of four) are ignored.
    pub fn parse(text: &str) -> Result<Self, NoticeNumberError> {
        let digits: String = text.trim().chars().filter(|c| *c != ' ').collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(NoticeNumberError::NotDigits);
        }
        if digits.len() != 18 {
            return Err(NoticeNumberError::Length(digits.chars().count()));
        }
        let aux = digits.as_bytes()[0] - b'0';
        match aux {
            0 | 2 | 3 => {
                let expected = check_digits(&digits[..16]);
                let found: u8 = digits[16..]
                    .parse()
                    .map_err(|_| NoticeNumberError::NotDigits)?;
                if expected != found {
                    return Err(NoticeNumberError::CheckDigits { expected, found });
                }
            }
            1 => {}
            other => return Err(NoticeNumberError::AuxDigit(other)),
        }
        Ok(Self(digits))
    }

    /// The 18 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The aux digit, 0..=3.
    pub fn aux_digit(&self) -> u8 {
        self.0.as_bytes()[0] - b'0'
    }

    /// The segregation code of an aux-3 number.
    pub fn segregation_code(&self) -> Option<u8> {
        (self.aux_digit() == 3).then(|| self.0[1..3].parse().unwrap_or(0))
    }

    /// The IUV (creditorReferenceId): 15 digits for aux 0 (the application code is not part
    /// of it), 17 otherwise.
    pub fn iuv(&self) -> Iuv {
        match self.aux_digit() {
            0 => Iuv(self.0[3..].to_owned()),
            _ => Iuv(self.0[1..].to_owned()),
        }
    }

    /// The printed form: groups of four digits, "3120 0000 0001 2345 87".
    pub fn printed(&self) -> String {
        let mut out = String::with_capacity(22);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }

    /// The payload of the notice's QR code: `PAGOPA|002|<NAV>|<creditor>|<cents>`.
    pub fn qr_code_payload(
        &self,
        creditor: &OrganizationFiscalCode,
        amount: AmountCents,
    ) -> String {
        format!(
            "PAGOPA|002|{}|{}|{}",
            self.0,
            creditor.as_str(),
            amount.get()
        )
    }
}

impl fmt::Display for NoticeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NoticeNumber {
    type Error = NoticeNumberError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<NoticeNumber> for String {
    fn from(number: NoticeNumber) -> Self {
        number.0
    }
}

/// An IUV (Identificativo Univoco di Versamento): the creditor's reference of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iuv(String);

impl Iuv {
    /// 1 to 35 ASCII letters and digits (RF-style IUVs of old receipts included).
    pub fn parse(text: &str) -> Result<Self, NoticeNumberError> {
        if text.is_empty() || text.len() > 35 || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(NoticeNumberError::Iuv);
        }
        Ok(Self(text.to_owned()))
    }

    /// The IUV.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Iuv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Iuv {
    type Error = NoticeNumberError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Iuv> for String {
    fn from(iuv: Iuv) -> Self {
        iuv.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn issue(seg: u8, base: u64) -> NoticeNumber {
        NoticeNumber::issue(
            SegregationCode::new(seg).unwrap(),
            IuvBase::new(base).unwrap(),
        )
    }

    #[test]
    fn saci_worked_examples() {
        // SACI: 3 12 0000000012345 -> 3120000000012345 mod 93 = 87.
        let nav = issue(12, 12345);
        assert_eq!(nav.as_str(), "312000000001234587");
        assert_eq!(nav.iuv().as_str(), "12000000001234587");
        assert_eq!(nav.segregation_code(), Some(12));
        assert_eq!(nav.printed(), "3120 0000 0001 2345 87");
        assert!(NoticeNumber::parse("300715700000000032").is_ok());
        let aux0 = NoticeNumber::parse("001000000001234516").unwrap();
        assert_eq!(aux0.iuv().as_str(), "000000001234516");
        assert!(NoticeNumber::parse("200000000001234571").is_ok());
        assert!(
            NoticeNumber::parse("100000000000000001").is_ok(),
            "aux 1 has no check digits"
        );
        assert_eq!(
            NoticeNumber::parse("311111111112222222"),
            Err(NoticeNumberError::CheckDigits {
                expected: 47,
                found: 22
            })
        );
        assert_eq!(NoticeNumber::parse("3120 0000 0001 2345 87").unwrap(), nav);
        assert_eq!(
            NoticeNumber::parse("412000000001234587"),
            Err(NoticeNumberError::AuxDigit(4))
        );
        assert_eq!(
            NoticeNumber::parse("31200000000123458"),
            Err(NoticeNumberError::Length(17))
        );
        assert_eq!(
            NoticeNumber::parse("31200000000123458x"),
            Err(NoticeNumberError::NotDigits)
        );
        let milan = OrganizationFiscalCode::parse("01199250158").unwrap();
        assert_eq!(
            nav.qr_code_payload(&milan, AmountCents::new(12550).unwrap()),
            "PAGOPA|002|312000000001234587|01199250158|12550"
        );
    }

    #[test]
    fn reserved_segregation_codes_are_refused() {
        for code in RESERVED_SEGREGATION_CODES {
            assert_eq!(
                SegregationCode::new(code),
                Err(NoticeNumberError::ReservedSegregation(code))
            );
        }
        assert_eq!(SegregationCode::parse("12").unwrap().get(), 12);
        assert!(SegregationCode::parse("1").is_err());
        assert!(SegregationCode::parse("123").is_err());
        assert!(IuvBase::new(10_000_000_000_000).is_err());
    }

    fn segregation_code() -> impl Strategy<Value = u8> {
        (0u8..100).prop_filter("not reserved", |c| !RESERVED_SEGREGATION_CODES.contains(c))
    }

    proptest! {
        #[test]
        fn issued_numbers_parse_back(seg in segregation_code(), base in 0u64..=IuvBase::MAX) {
            let nav = issue(seg, base);
            prop_assert_eq!(NoticeNumber::parse(nav.as_str()).unwrap(), nav.clone());
            prop_assert_eq!(NoticeNumber::parse(&nav.printed()).unwrap(), nav.clone());
            prop_assert_eq!(nav.printed().len(), 22);
            let iuv = nav.iuv();
            prop_assert_eq!(iuv.as_str(), &nav.as_str()[1..]);
        }

        #[test]
        fn every_single_digit_substitution_is_caught(
            seg in segregation_code(),
            base in 0u64..=IuvBase::MAX,
            position in 1usize..18,
            delta in 1u8..10,
        ) {
            // gcd(10, 93) = 1, so changing one digit of the body always changes the
            // remainder; changing a check digit changes what is compared with it.
            let nav = issue(seg, base);
            let mut digits = nav.as_str().as_bytes().to_vec();
            digits[position] = b'0' + (digits[position] - b'0' + delta) % 10;
            let mutated = String::from_utf8(digits).unwrap();
            prop_assert!(NoticeNumber::parse(&mutated).is_err(), "{} accepted", mutated);
        }
    }
}
