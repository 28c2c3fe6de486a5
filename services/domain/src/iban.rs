//! IBANs (ISO 13616): country, check digits (mod 97), the registered length of SEPA
//! countries, and for Italy and San Marino the BBAN shape with its CIN check character.
//! Poste Italiane accounts (ABI 07601) are recognised because PagoPA routes postal transfers
//! (`transferType=POSTAL`) only to them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fiscal_code::check_character;

/// The ABI of Poste Italiane.
pub const POSTE_ABI: &str = "07601";

/// Why an IBAN was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IbanError {
    /// Characters other than letters and digits.
    #[error("an IBAN has only letters and digits")]
    Characters,
    /// No country code.
    #[error("an IBAN starts with a two-letter country code and two check digits")]
    Prefix,
    /// Wrong length for its country.
    #[error("an IBAN of {country} has {expected} characters, got {found}")]
    Length {
        /// Country code.
        country: String,
        /// Registered length.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// Outside 15..=34 for an unknown country.
    #[error("an IBAN has 15 to 34 characters, got {0}")]
    GenericLength(usize),
    /// Italian BBAN shape.
    #[error(
        "an Italian IBAN is IT, 2 check digits, a CIN letter, ABI (5 digits), CAB (5 digits), 12-character account"
    )]
    ItalianShape,
    /// CIN mismatch.
    #[error("wrong CIN: expected {expected}, found {found}")]
    Cin {
        /// Computed.
        expected: char,
        /// Given.
        found: char,
    },
    /// Mod-97 check failed.
    #[error("wrong check digits")]
    CheckDigits,
}

/// Registered IBAN lengths of the SEPA countries.
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AT", 20),
    ("BE", 16),
    ("BG", 22),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("GI", 23),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("VA", 22),
];

/// An IBAN, compact and upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iban(String);

impl Iban {
    /// Parses an IBAN; spaces are ignored, letters may be lower case.
    pub fn parse(text: &str) -> Result<Self, IbanError> {
        let iban: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        if !iban.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IbanError::Characters);
        }
        let bytes = iban.as_bytes();
        if bytes.len() < 4
            || !bytes[..2].iter().all(u8::is_ascii_uppercase)
            || !bytes[2..4].iter().all(u8::is_ascii_digit)
        {
            return Err(IbanError::Prefix);
        }
        let country = &iban[..2];
        match LENGTHS.iter().find(|(c, _)| *c == country) {
            Some(&(_, expected)) if expected != iban.len() => {
                return Err(IbanError::Length {
                    country: country.to_owned(),
                    expected,
                    found: iban.len(),
                });
            }
            None if !(15..=34).contains(&iban.len()) => {
                return Err(IbanError::GenericLength(iban.len()));
            }
            _ => {}
        }
        if country == "IT" || country == "SM" {
            let bban = &bytes[4..];
            let shape = bban[0].is_ascii_uppercase() && bban[1..11].iter().all(u8::is_ascii_digit);
            if !shape {
                return Err(IbanError::ItalianShape);
            }
            let expected = check_character(&bban[1..]);
            if expected != bban[0] {
                return Err(IbanError::Cin {
                    expected: char::from(expected),
                    found: char::from(bban[0]),
                });
            }
        }
        if mod97(&iban) != 1 {
            return Err(IbanError::CheckDigits);
        }
        Ok(Self(iban))
    }

    /// The compact IBAN.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO country code.
    pub fn country_code(&self) -> &str {
        &self.0[..2]
    }

    /// The ABI (bank code) of an Italian or Sammarinese IBAN.
    pub fn abi(&self) -> Option<&str> {
        matches!(self.country_code(), "IT" | "SM").then(|| &self.0[5..10])
    }

    /// True for a Poste Italiane account.
    pub fn is_poste(&self) -> bool {
        self.country_code() == "IT" && self.abi() == Some(POSTE_ABI)
    }

    /// Groups of four characters, as printed.
    pub fn printed(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// ISO 7064 mod 97-10 of the rearranged IBAN, computed digit by digit.
fn mod97(iban: &str) -> u32 {
    let (head, tail) = iban.split_at(4);
    tail.bytes().chain(head.bytes()).fold(0u32, |acc, b| {
        if b.is_ascii_digit() {
            (acc * 10 + u32::from(b - b'0')) % 97
        } else {
            (acc * 100 + u32::from(b - b'A') + 10) % 97
        }
    })
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Iban {
    type Error = IbanError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Iban> for String {
    fn from(iban: Iban) -> Self {
        iban.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Published examples and accounts computed by hand (CIN from the odd/even tables,
    /// check digits 98 - (BBAN‖IT00 mod 97)).
    const VALID: [&str; 5] = [
        "IT60X0542811101000000123456",
        "IT02N0306909400000012345678",
        "IT22L0760101600000012345678",
        "IT66Q0503401633000000098765",
        "IT92G0760101600000098765432",
    ];

    #[test]
    fn known_ibans() {
        for iban in VALID {
            assert!(Iban::parse(iban).is_ok(), "{iban}");
        }
        let example = Iban::parse("it60 x054 2811 1010 0000 0123 456").unwrap();
        assert_eq!(example.as_str(), "IT60X0542811101000000123456");
        assert_eq!(example.abi(), Some("05428"));
        assert!(!example.is_poste());
        assert!(
            Iban::parse("IT22L0760101600000012345678")
                .unwrap()
                .is_poste()
        );
        assert_eq!(example.printed(), "IT60 X054 2811 1010 0000 0123 456");
        assert!(
            Iban::parse("DE89370400440532013000").is_ok(),
            "the ISO 13616 German example"
        );
        assert_eq!(
            Iban::parse("IT60Y0542811101000000123456"),
            Err(IbanError::Cin {
                expected: 'X',
                found: 'Y'
            })
        );
        assert_eq!(
            Iban::parse("IT61X0542811101000000123456"),
            Err(IbanError::CheckDigits)
        );
        assert!(matches!(
            Iban::parse("IT60X054281110100000012345"),
            Err(IbanError::Length { .. })
        ));
        assert_eq!(
            Iban::parse("IT60X05428111010000001234-6"),
            Err(IbanError::Characters)
        );
    }

    proptest! {
        #[test]
        fn single_substitutions_are_rejected(which in 0usize..5, position in 0usize..27, new in 0u8..26) {
            // A digit for a digit, a letter for a letter: mod 97 catches every such change
            // (a letter swapped for a digit shifts the number and is caught only by chance).
            let iban = VALID[which];
            let mut bytes = iban.as_bytes().to_vec();
            let replacement = if bytes[position].is_ascii_digit() { b'0' + new % 10 } else { b'A' + new };
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert!(Iban::parse(&mutated).is_err(), "{} accepted", mutated);
        }

        #[test]
        fn printed_form_round_trips(which in 0usize..5) {
            let iban = Iban::parse(VALID[which]).unwrap();
            prop_assert_eq!(Iban::parse(&iban.printed()).unwrap(), iban);
        }
    }
}
