//! Italian fiscal codes: the 16-character codice fiscale of a natural person (with its check
//! character and the omocodia substitutions) and the 11-digit numeric fiscal code / partita
//! IVA of legal entities and public bodies (with its check digit). Personal codes are personal
//! data: errors say which rule failed, never the code.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a fiscal code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiscalCodeError {
    /// Neither 16 nor 11 characters.
    #[error("expected 16 characters (person) or 11 digits (legal entity), got {0} characters")]
    Length(usize),
    /// Not 11 digits.
    #[error("expected 11 digits, got {0} characters")]
    NumericLength(usize),
    /// A non-digit in a numeric code.
    #[error("a numeric fiscal code has only digits")]
    NotDigits,
    /// All zeros.
    #[error("a numeric fiscal code cannot be all zeros")]
    AllZeros,
    /// Wrong check digit of a numeric code.
    #[error("wrong check digit")]
    CheckDigit,
    /// A character in the wrong place.
    #[error("character {position} must be {expected}")]
    Structure {
        /// 1-based position.
        position: usize,
        /// What belongs there.
        expected: &'static str,
    },
    /// Not a month letter.
    #[error("invalid month letter (character 9 must be one of ABCDEHLMPRST)")]
    Month,
    /// Not a day of the month (01-31, or 41-71 for women).
    #[error("invalid day of birth (characters 10-11 must be 01-31 or 41-71)")]
    Day,
    /// Wrong check character of a personal code.
    #[error("wrong check character")]
    CheckCharacter,
}

/// Natural person (F) or legal entity (G), as PagoPA's stEntityUniqueIdentifierType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityType {
    /// Persona fisica.
    F,
    /// Persona giuridica.
    G,
}

impl EntityType {
    /// "F" or "G".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F => "F",
            Self::G => "G",
        }
    }

    /// The type from "F" or "G".
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "F" => Some(Self::F),
            "G" => Some(Self::G),
            _ => None,
        }
    }
}

const MONTH_LETTERS: &str = "ABCDEHLMPRST";
/// The letters that replace the digits 0..9 in omocodic codes.
const OMOCODIA_LETTERS: &[u8; 10] = b"LMNPQRSTUV";
/// 0-based positions that may carry omocodia letters.
const OMOCODIA_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
/// Values of characters in odd (1st, 3rd, ...) positions: digits 0..9, then letters A..Z.
const ODD_DIGITS: [u32; 10] = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21];
const ODD_LETTERS: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// The value of an upper-case letter or digit in an odd (1-based) position of the Italian
/// check-character tables, shared by the codice fiscale and the IBAN's CIN.
pub(crate) fn odd_value(c: u8) -> u32 {
    if c.is_ascii_digit() {
        ODD_DIGITS[usize::from(c - b'0')]
    } else {
        ODD_LETTERS[usize::from(c - b'A')]
    }
}

/// The value of an upper-case letter or digit in an even (1-based) position.
pub(crate) fn even_value(c: u8) -> u32 {
    if c.is_ascii_digit() {
        u32::from(c - b'0')
    } else {
        u32::from(c - b'A')
    }
}

/// The check character over `chars` (upper-case letters and digits).
pub(crate) fn check_character(chars: &[u8]) -> u8 {
    let sum: u32 = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if i % 2 == 0 {
                odd_value(c)
            } else {
                even_value(c)
            }
        })
        .sum();
    b'A' + u8::try_from(sum % 26).unwrap_or(0)
}

/// The codice fiscale of a natural person.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonalFiscalCode(String);

impl PersonalFiscalCode {
    /// Parses a 16-character code (case-insensitive, surrounding spaces ignored).
    pub fn parse(text: &str) -> Result<Self, FiscalCodeError> {
        let code = text.trim().to_ascii_uppercase();
        let bytes = code.as_bytes();
        if bytes.len() != 16 || !code.is_ascii() {
            return Err(FiscalCodeError::Length(code.chars().count()));
        }
        let letter = |i: usize| bytes[i].is_ascii_uppercase();
        let digitish = |i: usize| bytes[i].is_ascii_digit() || OMOCODIA_LETTERS.contains(&bytes[i]);
        for i in 0..6 {
            if !letter(i) {
                return Err(FiscalCodeError::Structure {
                    position: i + 1,
                    expected: "a letter",
                });
            }
        }
        for i in OMOCODIA_POSITIONS {
            if !digitish(i) {
                return Err(FiscalCodeError::Structure {
                    position: i + 1,
                    expected: "a digit (or its omocodia letter)",
                });
            }
        }
        if !MONTH_LETTERS.as_bytes().contains(&bytes[8]) {
            return Err(FiscalCodeError::Month);
        }
        if !letter(11) {
            return Err(FiscalCodeError::Structure {
                position: 12,
                expected: "a letter",
            });
        }
        if !letter(15) {
            return Err(FiscalCodeError::Structure {
                position: 16,
                expected: "a letter",
            });
        }
        let digit = |c: u8| {
            if c.is_ascii_digit() {
                c - b'0'
            } else {
                u8::try_from(OMOCODIA_LETTERS.iter().position(|&l| l == c).unwrap_or(0))
                    .unwrap_or(0)
            }
        };
        let day = digit(bytes[9]) * 10 + digit(bytes[10]);
        if !((1..=31).contains(&day) || (41..=71).contains(&day)) {
            return Err(FiscalCodeError::Day);
        }
        if check_character(&bytes[..15]) != bytes[15] {
            return Err(FiscalCodeError::CheckCharacter);
        }
        Ok(Self(code))
    }

    /// The code, upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PersonalFiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalFiscalCode(..)")
    }
}

impl TryFrom<String> for PersonalFiscalCode {
    type Error = FiscalCodeError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<PersonalFiscalCode> for String {
    fn from(code: PersonalFiscalCode) -> Self {
        code.0
    }
}

/// An 11-digit numeric fiscal code or partita IVA, such as a creditor's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrganizationFiscalCode(String);

impl OrganizationFiscalCode {
    /// Parses 11 digits and checks the last one.
    pub fn parse(text: &str) -> Result<Self, FiscalCodeError> {
        let bytes = text.as_bytes();
        if bytes.len() != 11 {
            return Err(FiscalCodeError::NumericLength(text.chars().count()));
        }
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(FiscalCodeError::NotDigits);
        }
        if bytes.iter().all(|&b| b == b'0') {
            return Err(FiscalCodeError::AllZeros);
        }
        let sum: u32 = bytes[..10]
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 0 {
                    d
                } else if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            })
            .sum();
        let check = (10 - sum % 10) % 10;
        if u32::from(bytes[10] - b'0') != check {
            return Err(FiscalCodeError::CheckDigit);
        }
        Ok(Self(text.to_owned()))
    }

    /// The 11 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganizationFiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for OrganizationFiscalCode {
    type Error = FiscalCodeError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<OrganizationFiscalCode> for String {
    fn from(code: OrganizationFiscalCode) -> Self {
        code.0
    }
}

/// A debtor's fiscal code of either form.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FiscalCode {
    /// 16 characters.
    Personal(PersonalFiscalCode),
    /// 11 digits.
    Organization(OrganizationFiscalCode),
}

impl FiscalCode {
    /// Chooses the form by length.
    pub fn parse(text: &str) -> Result<Self, FiscalCodeError> {
        let trimmed = text.trim();
        match trimmed.chars().count() {
            16 => PersonalFiscalCode::parse(trimmed).map(Self::Personal),
            11 => OrganizationFiscalCode::parse(trimmed).map(Self::Organization),
            n => Err(FiscalCodeError::Length(n)),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Personal(code) => code.as_str(),
            Self::Organization(code) => code.as_str(),
        }
    }
}

impl fmt::Debug for FiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Personal(_) => f.write_str("FiscalCode::Personal(..)"),
            Self::Organization(code) => write!(f, "FiscalCode::Organization({})", code.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_personal_codes() {
        for code in ["RSSMRA80A01F205X", "BNCLRA85M41F205C", "rssmra80a01f205x"] {
            assert!(PersonalFiscalCode::parse(code).is_ok(), "{code}");
        }
        assert_eq!(
            PersonalFiscalCode::parse("RSSMRA80A01F205Y"),
            Err(FiscalCodeError::CheckCharacter)
        );
        assert_eq!(
            PersonalFiscalCode::parse("RSSMRA80Z01F205X"),
            Err(FiscalCodeError::Month)
        );
        assert_eq!(
            PersonalFiscalCode::parse("RSSMRA80A32F205X"),
            Err(FiscalCodeError::Day)
        );
        assert!(matches!(
            PersonalFiscalCode::parse("RSSMR180A01F205X"),
            Err(FiscalCodeError::Structure { position: 6, .. })
        ));
    }

    #[test]
    fn omocodic_codes_are_accepted() {
        // RSSMRA80A01F205 with the last cadastral digit 5 replaced by its letter R, and with
        // the day 01 written LM; check characters computed by hand from the published tables.
        assert!(PersonalFiscalCode::parse("RSSMRA80A01F20RS").is_ok());
        assert!(PersonalFiscalCode::parse("RSSMRA80ALMF205A").is_ok());
        assert_eq!(
            PersonalFiscalCode::parse("RSSMRA80A01F20RX"),
            Err(FiscalCodeError::CheckCharacter)
        );
        // A substitution letter outside the omocodia set is not a digit.
        assert!(PersonalFiscalCode::parse("RSSMRA80A01F20AS").is_err());
    }

    #[test]
    fn known_numeric_codes() {
        assert!(
            OrganizationFiscalCode::parse("01199250158").is_ok(),
            "Comune di Milano"
        );
        assert!(
            OrganizationFiscalCode::parse("08911820960").is_ok(),
            "Città Metropolitana"
        );
        assert_eq!(
            OrganizationFiscalCode::parse("01199250159"),
            Err(FiscalCodeError::CheckDigit)
        );
        assert_eq!(
            OrganizationFiscalCode::parse("00000000000"),
            Err(FiscalCodeError::AllZeros)
        );
        assert_eq!(
            OrganizationFiscalCode::parse("0119925015"),
            Err(FiscalCodeError::NumericLength(10))
        );
        assert!(matches!(
            FiscalCode::parse("01199250158"),
            Ok(FiscalCode::Organization(_))
        ));
        assert!(matches!(
            FiscalCode::parse(" RSSMRA80A01F205X "),
            Ok(FiscalCode::Personal(_))
        ));
        assert_eq!(FiscalCode::parse("ABC"), Err(FiscalCodeError::Length(3)));
    }

    #[test]
    fn errors_and_debug_never_show_the_code() {
        let code = FiscalCode::parse("RSSMRA80A01F205X").unwrap();
        assert!(!format!("{code:?}").contains("RSSMRA"));
        let error = FiscalCode::parse("RSSMRA80A01F205Y").unwrap_err();
        assert!(!error.to_string().contains("RSSMRA"));
    }

    /// An independent, table-free statement of the check-character rule: odd positions
    /// use the published odd table written out as a string lookup.
    fn reference_check(body: &str) -> char {
        // The letter whose odd-position value is the index; digit d counts as letter A+d.
        const ODD: &str = "BAKPLCQDREVOSFTGUHMINJWZYX";
        let odd = |c: char| -> u32 {
            let letter = if c.is_ascii_digit() {
                (b'A' + (c as u8 - b'0')) as char
            } else {
                c
            };
            ODD.find(letter).map(|p| p as u32).unwrap()
        };
        let even = |c: char| -> u32 {
            if c.is_ascii_digit() {
                c as u32 - '0' as u32
            } else {
                c as u32 - 'A' as u32
            }
        };
        let sum: u32 = body
            .chars()
            .enumerate()
            .map(|(i, c)| if i % 2 == 0 { odd(c) } else { even(c) })
            .sum();
        (b'A' + (sum % 26) as u8) as char
    }

    fn personal_body() -> impl Strategy<Value = String> {
        (
            "[A-Z]{6}",
            0u8..100,
            0usize..12,
            prop_oneof![1u8..=31, 41u8..=71],
            "[A-Z]",
            0u16..1000,
        )
            .prop_map(|(name, year, month, day, town, number)| {
                let month = MONTH_LETTERS.as_bytes()[month] as char;
                format!("{name}{year:02}{month}{day:02}{town}{number:03}")
            })
    }

    proptest! {
        #[test]
        fn valid_personal_codes_parse(body in personal_body()) {
            let code = format!("{body}{}", reference_check(&body));
            prop_assert!(PersonalFiscalCode::parse(&code).is_ok(), "{}", code);
        }

        #[test]
        fn any_other_check_character_fails(body in personal_body(), wrong in 0u8..25) {
            let right = reference_check(&body) as u8 - b'A';
            let wrong = (right + 1 + wrong) % 26;
            let code = format!("{body}{}", (b'A' + wrong) as char);
            prop_assert_eq!(PersonalFiscalCode::parse(&code), Err(FiscalCodeError::CheckCharacter));
        }

        #[test]
        fn numeric_single_digit_substitutions_fail(position in 0usize..11, delta in 1u8..10) {
            let mut digits = b"01199250158".to_vec();
            digits[position] = b'0' + (digits[position] - b'0' + delta) % 10;
            let code = String::from_utf8(digits).unwrap();
            prop_assert!(OrganizationFiscalCode::parse(&code).is_err(), "{}", code);
        }
    }
}
