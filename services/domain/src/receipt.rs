//! What a payment receipt says about the payment itself, as types: whether the payment was
//! made (its outcome). The rest of a receipt (amounts in cents, the notice number, the instant
//! of payment) uses the domain's general types.

use serde::Serialize;

/// The outcome a receipt reports (`stOutcome`): the payment was made, or it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ReceiptOutcome {
    /// Paid.
    #[serde(rename = "OK")]
    Ok,
    /// Not paid.
    #[serde(rename = "KO")]
    Ko,
}

impl ReceiptOutcome {
    /// `OK` or `KO`, exactly as PagoPA writes them; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OK" => Some(Self::Ok),
            "KO" => Some(Self::Ko),
            _ => None,
        }
    }

    /// `OK` or `KO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Ko => "KO",
        }
    }

    /// True when the payment was made.
    pub fn is_paid(self) -> bool {
        self == Self::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_and_write_as_pagopa_spells_them() {
        assert_eq!(ReceiptOutcome::parse("OK"), Some(ReceiptOutcome::Ok));
        assert_eq!(ReceiptOutcome::parse("KO"), Some(ReceiptOutcome::Ko));
        for wrong in ["ok", "Ko", " OK", "OKK", ""] {
            assert_eq!(ReceiptOutcome::parse(wrong), None, "{wrong:?}");
        }
        assert!(ReceiptOutcome::Ok.is_paid() && !ReceiptOutcome::Ko.is_paid());
        assert_eq!(ReceiptOutcome::Ko.as_str(), "KO");
    }
}
