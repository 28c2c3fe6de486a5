//! The simple values of the formats: decimal amounts into exact cents, dates and date-times.

use incasso_domain::rome_time::from_rome_local;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// A decimal amount in the lexical form of `xs:decimal` (an optional sign, digits, and a
/// fraction after a dot, either side of which may be empty: `+12.30`, `.50`, `12.`) into
/// cents. Leading zeros are not counted against the 15 integer digits an amount may have;
/// digits beyond the cent must be zeros: a fraction of a cent is refused, never rounded.
pub(crate) fn cents(text: &str) -> Result<i64, String> {
    let refuse = || {
        format!(
            "'{}' is not an amount in euro with at most two decimals",
            shown(text)
        )
    };
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (units, decimals) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let units = units.trim_start_matches('0');
    if (units.is_empty() && decimals.is_empty() && !digits.starts_with('0'))
        || units.len() > 15
        || !all_digits(units)
        || !all_digits(decimals)
    {
        return Err(refuse());
    }
    if decimals.len() > 2 && decimals[2..].bytes().any(|b| b != b'0') {
        return Err(format!("'{}' has a fraction of a cent", shown(text)));
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units.parse().map_err(|_| refuse())?
    };
    let mut fraction = 0i64;
    for (i, b) in decimals.bytes().take(2).enumerate() {
        fraction += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    let value = units
        .checked_mul(100)
        .and_then(|c| c.checked_add(fraction))
        .ok_or_else(refuse)?;
    Ok(if negative { -value } else { value })
}

/// An `xs:date` (`YYYY-MM-DD`; a time-zone suffix is ignored).
pub(crate) fn date(text: &str) -> Result<Date, String> {
    let day = text.get(..10).unwrap_or(text);
    let rest = text.get(10..).unwrap_or("");
    let zone_ok = rest.is_empty()
        || rest == "Z"
        || (rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')));
    Date::parse(day, format_description!("[year]-[month]-[day]"))
        .ok()
        .filter(|_| zone_ok)
        .ok_or_else(|| format!("'{}' is not a date (YYYY-MM-DD)", shown(text)))
}

/// The day of an `xs:dateTime` as written (`2026-03-11T10:00:00+01:00` is 11 March).
pub(crate) fn date_of_date_time(text: &str) -> Result<Date, String> {
    date_time(text)
        .map(|_| ())
        .and_then(|()| date(text.get(..10).unwrap_or(text)))
}

/// An `xs:dateTime`; without an offset it is Rome's local time (PagoPA writes them so).
pub(crate) fn date_time(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(instant) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(instant);
    }
    let without_fraction = text.split('.').next().unwrap_or(text);
    PrimitiveDateTime::parse(
        without_fraction,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    )
    .map(from_rome_local)
    .map_err(|_| format!("'{}' is not a date-time (YYYY-MM-DDThh:mm:ss)", shown(text)))
}

/// Values quoted in errors are cut.
pub(crate) fn shown(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    #[test]
    fn amounts() {
        assert_eq!(cents("1234.56"), Ok(123_456));
        assert_eq!(cents("10"), Ok(1_000));
        assert_eq!(cents("10.5"), Ok(1_050));
        assert_eq!(cents("-3.00"), Ok(-300));
        assert_eq!(cents("0.10000"), Ok(10));
        // Every lexical form of xs:decimal.
        assert_eq!(cents("+12.30"), Ok(1_230));
        assert_eq!(cents(".50"), Ok(50));
        assert_eq!(cents("-.5"), Ok(-50));
        assert_eq!(cents("12."), Ok(1_200));
        assert_eq!(cents("0"), Ok(0));
        assert_eq!(cents("0000000000000000012.50"), Ok(1_250));
        assert_eq!(cents("1.2300000000"), Ok(123));
        for bad in [
            "",
            ".",
            "+",
            "-",
            "+.",
            "1,00",
            "1.001",
            "1e3",
            "1.234567",
            " 1",
            "--1",
            "+-1",
            "1234567890123456",
        ] {
            assert!(cents(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(date("2026-03-11"), Ok(date!(2026 - 03 - 11)));
        assert_eq!(date("2026-03-11+01:00"), Ok(date!(2026 - 03 - 11)));
        assert!(date("11/03/2026").is_err());
        assert!(date("2026-02-30").is_err());
        assert_eq!(
            date_of_date_time("2026-03-11T23:30:00+01:00"),
            Ok(date!(2026 - 03 - 11))
        );
        let local = date_time("2026-03-11T10:00:00").unwrap();
        assert_eq!(local, date_time("2026-03-11T09:00:00Z").unwrap());
        assert!(date_time("2026-03-11").is_err());
    }

    proptest! {
        #[test]
        fn cents_round_trip(c in -99_999_999_999i64..99_999_999_999) {
            let text = format!("{}{}.{:02}", if c < 0 { "-" } else { "" }, c.abs() / 100, c.abs() % 100);
            prop_assert_eq!(cents(&text), Ok(c));
        }
    }
}
