//! Money as integer euro cents, and PagoPA's `stAmount` text form (`\d+\.\d{2}`).
//!
//! Parsing and formatting are written by hand rather than through `rust_decimal`: the format
//! is a strict lexical pattern (digits, a dot, exactly two digits), so the exact conversion is
//! integer digits in, integer cents out, with no scale or rounding decision left to make, and
//! the checks a decimal library would skip (a sign, an exponent, one or three decimals) are
//! precisely the ones the PagoPA Node enforces.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 999 999 999.99 EUR, the largest amount PagoPA accepts.
pub const MAX_AMOUNT_CENTS: i64 = 99_999_999_999;

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not `\d+\.\d{2}`.
    #[error("'{0}' is not an amount in the form 123.45 (digits, a dot, exactly two decimals)")]
    Format(String),
    /// Zero where a payable amount is needed.
    #[error("must be greater than zero")]
    Zero,
    /// Below zero.
    #[error("must not be negative, got {0} cents")]
    Negative(i64),
    /// Above 999 999 999.99 EUR.
    #[error("must be at most {MAX_AMOUNT_CENTS} cents (999999999.99 EUR), got {0}")]
    TooLarge(i64),
}

/// A payable amount: 1 to [`MAX_AMOUNT_CENTS`] euro cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct AmountCents(i64);

impl AmountCents {
    /// An amount of `cents`, refused unless 1..=MAX.
    pub fn new(cents: i64) -> Result<Self, MoneyError> {
        match cents {
            0 => Err(MoneyError::Zero),
            c if c < 0 => Err(MoneyError::Negative(c)),
            c if c > MAX_AMOUNT_CENTS => Err(MoneyError::TooLarge(c)),
            c => Ok(Self(c)),
        }
    }

    /// The cents.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Parses PagoPA's `stAmountNotZero`: `\d+\.\d{2}`, 0.01..=999999999.99.
    pub fn parse_st_amount(text: &str) -> Result<Self, MoneyError> {
        Self::new(parse_st_amount_cents(text)?)
    }

    /// The `stAmount` text: "300.00", "0.05".
    pub fn to_st_amount(self) -> String {
        format_cents(self.0)
    }

    /// The sum, if it is still a valid amount.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).and_then(|c| Self::new(c).ok())
    }
}

impl fmt::Display for AmountCents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_st_amount())
    }
}

impl TryFrom<i64> for AmountCents {
    type Error = MoneyError;

    fn try_from(cents: i64) -> Result<Self, Self::Error> {
        Self::new(cents)
    }
}

impl From<AmountCents> for i64 {
    fn from(amount: AmountCents) -> Self {
        amount.0
    }
}

/// Parses PagoPA's `stAmount` (0.00 allowed, as in a receipt's fee) into cents.
pub fn parse_st_amount_cents(text: &str) -> Result<i64, MoneyError> {
    let format_error = || MoneyError::Format(text.chars().take(40).collect());
    let (units, decimals) = text.split_once('.').ok_or_else(format_error)?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(units) || decimals.len() != 2 || !all_digits(decimals) {
        return Err(format_error());
    }
    // Leading zeros are allowed by the pattern; strip them so the length check is meaningful.
    let units = units.trim_start_matches('0');
    if units.len() > 9 {
        return Err(MoneyError::TooLarge(i64::MAX));
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units.parse().map_err(|_| format_error())?
    };
    let decimals: i64 = decimals.parse().map_err(|_| format_error())?;
    Ok(units * 100 + decimals)
}

/// Formats 0..=MAX cents as `stAmount` text.
pub fn format_st_amount(cents: i64) -> Result<String, MoneyError> {
    if cents < 0 {
        return Err(MoneyError::Negative(cents));
    }
    if cents > MAX_AMOUNT_CENTS {
        return Err(MoneyError::TooLarge(cents));
    }
    Ok(format_cents(cents))
}

fn format_cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_amounts() {
        assert_eq!(AmountCents::parse_st_amount("300.00").unwrap().get(), 30000);
        assert_eq!(AmountCents::parse_st_amount("0.05").unwrap().get(), 5);
        assert_eq!(
            AmountCents::parse_st_amount("999999999.99").unwrap().get(),
            MAX_AMOUNT_CENTS
        );
        assert_eq!(AmountCents::parse_st_amount("007.50").unwrap().get(), 750);
        assert_eq!(AmountCents::new(12550).unwrap().to_st_amount(), "125.50");
        assert_eq!(parse_st_amount_cents("0.00").unwrap(), 0);
        assert_eq!(AmountCents::parse_st_amount("0.00"), Err(MoneyError::Zero));
        assert!(matches!(
            AmountCents::parse_st_amount("1000000000.00"),
            Err(MoneyError::TooLarge(_))
        ));
        assert_eq!(format_st_amount(0).unwrap(), "0.00");
    }

    #[test]
    fn what_the_node_rejects_is_rejected() {
        for bad in [
            "11.3", "11,34", "11.342", "-1.00", "+1.00", " 1.00", "1.00 ", "1e2", ".50", "1.", "",
            "1.0a", "١.٠٠",
        ] {
            assert!(parse_st_amount_cents(bad).is_err(), "{bad:?}");
        }
        assert_eq!(AmountCents::new(0), Err(MoneyError::Zero));
        assert_eq!(AmountCents::new(-5), Err(MoneyError::Negative(-5)));
        assert_eq!(
            AmountCents::new(MAX_AMOUNT_CENTS + 1),
            Err(MoneyError::TooLarge(MAX_AMOUNT_CENTS + 1))
        );
    }

    proptest! {
        #[test]
        fn cents_round_trip(cents in 1i64..=MAX_AMOUNT_CENTS) {
            let amount = AmountCents::new(cents).unwrap();
            prop_assert_eq!(AmountCents::parse_st_amount(&amount.to_st_amount()).unwrap(), amount);
        }

        #[test]
        fn canonical_text_round_trips(units in 0i64..=999_999_999, decimals in 0i64..100) {
            let text = format!("{units}.{decimals:02}");
            let cents = parse_st_amount_cents(&text).unwrap();
            prop_assert_eq!(cents, units * 100 + decimals);
            prop_assert_eq!(format_st_amount(cents).unwrap(), text);
        }

        #[test]
        fn one_or_three_decimals_are_rejected(units in 0i64..1_000_000, d in 0u32..1000) {
            let one = format!("{units}.{}", d % 10);
            let three = format!("{units}.{d:03}");
            prop_assert!(parse_st_amount_cents(&one).is_err());
            prop_assert!(parse_st_amount_cents(&three).is_err());
            let comma = format!("{units},{:02}", d % 100);
            prop_assert!(parse_st_amount_cents(&comma).is_err());
        }
    }
}
