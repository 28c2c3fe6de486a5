//! PagoPA taxonomy codes (transferCategory, "Tassonomia dei servizi di incasso"): `9/` (or
//! 6/7/8, the SEPA Request-to-Pay opt-outs) + creditor type (2) + macro-area (2) + service
//! (3) + legal reason (IM tax, TS fee, SP public service, SA sanction, AP other) + `/`, or
//! the bare 9-character code. Both forms are used in the wild, so the string is kept exactly
//! as given.

use std::fmt;

use serde::{Deserialize, Serialize};

/// TARI, current tax year (Comune).
pub const TARI_CURRENT_YEAR: &str = "9/0101101IM/";
/// TARI, previous years (arrears, accertamento).
pub const TARI_PREVIOUS_YEARS: &str = "9/0101109IM/";
/// TEFA, current year (Provincia / Città metropolitana).
pub const TEFA_CURRENT_YEAR: &str = "9/0201102IM/";
/// TEFA, previous years.
pub const TEFA_PREVIOUS_YEARS: &str = "9/0201133IM/";
/// Traffic fines (Polizia Locale, verbali).
pub const TRAFFIC_FINE: &str = "9/0102100SA/";
/// Nido.
pub const SCHOOL_NIDO: &str = "9/0107106SP/";
/// Rette scolastiche.
pub const SCHOOL_FEES: &str = "9/0107100TS/";
/// Mense scolastiche.
pub const SCHOOL_MEALS: &str = "9/0107101TS/";

const REASONS: [&str; 5] = ["IM", "TS", "SP", "SA", "AP"];

/// Why a taxonomy code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a taxonomy code (expected e.g. 9/0101101IM/ or 0101101IM)")]
pub struct TaxonomyError(String);

/// A taxonomy code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaxonomyCode(String);

fn is_core(core: &str) -> bool {
    core.len() == 9
        && core.as_bytes()[..7].iter().all(u8::is_ascii_digit)
        && REASONS.contains(&&core[7..])
}

impl TaxonomyCode {
    /// Parses `N/ccccccccc/` (N in 6..=9) or the bare `ccccccccc`.
    pub fn parse(text: &str) -> Result<Self, TaxonomyError> {
        let error = || TaxonomyError(text.chars().take(20).collect());
        if !text.is_ascii() {
            return Err(error());
        }
        let valid = match text.len() {
            9 => is_core(text),
            12 => {
                let b = text.as_bytes();
                (b'6'..=b'9').contains(&b[0])
                    && b[1] == b'/'
                    && b[11] == b'/'
                    && is_core(&text[2..11])
            }
            _ => false,
        };
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(error())
        }
    }

    /// The code as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 9-character code without prefix and slashes.
    pub fn core(&self) -> &str {
        if self.0.len() == 12 {
            &self.0[2..11]
        } else {
            &self.0
        }
    }
}

impl fmt::Display for TaxonomyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TaxonomyCode {
    type Error = TaxonomyError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TaxonomyCode> for String {
    fn from(code: TaxonomyCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_codes() {
        for code in [
            TARI_CURRENT_YEAR,
            TARI_PREVIOUS_YEARS,
            TEFA_CURRENT_YEAR,
            TEFA_PREVIOUS_YEARS,
            TRAFFIC_FINE,
            SCHOOL_NIDO,
            SCHOOL_FEES,
            SCHOOL_MEALS,
        ] {
            assert!(TaxonomyCode::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn both_forms_are_kept_as_given() {
        let prefixed = TaxonomyCode::parse("9/0101101IM/").unwrap();
        assert_eq!(prefixed.core(), "0101101IM");
        let bare = TaxonomyCode::parse("0101101IM").unwrap();
        assert_eq!(bare.as_str(), "0101101IM");
        assert_eq!(bare.core(), "0101101IM");
        assert!(TaxonomyCode::parse("6/0101101IM/").is_ok());
        for bad in [
            "5/0101101IM/",
            "9/0101101XX/",
            "9/0101101IM",
            "010110IM",
            "",
            "9/01O1101IM/",
        ] {
            assert!(TaxonomyCode::parse(bad).is_err(), "{bad}");
        }
    }
}
