//! Field-level validation errors. Every rule that refuses input says which field (as a path
//! into the request, e.g. `payment_options[0].installments[1].due_date`) and why, and all
//! violations of one request are reported together so the caller fixes them in one round.

use std::fmt;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, with proto (snake_case) names and `[i]` indexes.
    pub field: String,
    /// What is wrong and what was expected.
    pub description: String,
}

/// All the invalid fields of one request; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors {
    violations: Vec<FieldViolation>,
}

impl ValidationErrors {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A single violation.
    pub fn single(field: impl Into<String>, description: impl fmt::Display) -> Self {
        let mut errors = Self::new();
        errors.add(field, description);
        errors
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl fmt::Display) {
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.to_string(),
        });
    }

    /// Records the error of a parse result and returns its value, if any.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error);
                None
            }
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// The recorded violations, in the order found.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// `Ok(value)` when nothing was recorded, the errors otherwise.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Checks a free-text field: trimmed, `min..=max` characters (Unicode scalar values, as the
/// XSD counts them), no control characters. Returns the trimmed text.
pub fn text(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    min_chars: usize,
    max_chars: usize,
) -> Option<String> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars < min_chars {
        if min_chars == 1 {
            errors.add(field, "required");
        } else {
            errors.add(
                field,
                format!("at least {min_chars} characters, got {chars}"),
            );
        }
        return None;
    }
    if chars > max_chars {
        errors.add(
            field,
            format!("at most {max_chars} characters, got {chars}"),
        );
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        errors.add(
            field,
            "control characters (newlines, tabs, ...) are not allowed",
        );
        return None;
    }
    Some(trimmed.to_owned())
}

/// Parses an ISO calendar date, `YYYY-MM-DD`.
pub fn date(errors: &mut ValidationErrors, field: &str, value: &str) -> Option<time::Date> {
    match parse_date(value) {
        Ok(date) => Some(date),
        Err(message) => {
            errors.add(field, message);
            None
        }
    }
}

/// Parses an ISO calendar date, `YYYY-MM-DD`, with a message naming what was wrong.
pub fn parse_date(value: &str) -> Result<time::Date, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("required (YYYY-MM-DD)".to_owned());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, format)
        .map_err(|_| format!("'{value}' is not a date (expected YYYY-MM-DD)"))
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(date: time::Date) -> String {
    let (year, month, day) = date.to_calendar_date();
    format!("{year:04}-{:02}-{day:02}", u8::from(month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(
            parse_date("2026-07-31").unwrap(),
            time::macros::date!(2026 - 07 - 31)
        );
        for bad in [
            "2026-02-30",
            "31/07/2026",
            "2026-7-31",
            "",
            "tomorrow",
            "2026-07-31T00:00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format_date(time::macros::date!(2026 - 01 - 05)),
            "2026-01-05"
        );
    }

    #[test]
    fn text_counts_characters_not_bytes() {
        let mut errors = ValidationErrors::new();
        let accented = "è".repeat(140);
        assert_eq!(
            text(&mut errors, "f", &accented, 1, 140),
            Some(accented.clone())
        );
        assert!(errors.is_empty());
        assert_eq!(
            text(&mut errors, "f", &format!("{accented}x"), 1, 140),
            None
        );
        assert_eq!(text(&mut errors, "g", "  ", 1, 140), None);
        assert_eq!(text(&mut errors, "h", "a\nb", 1, 140), None);
        let fields: Vec<_> = errors
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["f", "g", "h"]);
        assert_eq!(
            errors.violations()[0].description,
            "at most 140 characters, got 141"
        );
    }
}
