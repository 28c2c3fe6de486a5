//! The one place where use-case errors become gRPC statuses (and bulk items' errors).
//! Invalid input carries a `google.rpc.BadRequest` naming every bad field; internal errors
//! are logged with their detail and returned opaque.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use incasso_store::AppError;

use crate::pb;

fn code(error: &AppError) -> Code {
    match error {
        AppError::Invalid(_) => Code::InvalidArgument,
        AppError::NotFound { .. } => Code::NotFound,
        AppError::IdempotencyConflict { .. } => Code::AlreadyExists,
        AppError::Refused(_) => Code::FailedPrecondition,
        AppError::Unavailable(_) => Code::Unavailable,
        AppError::Internal(_) => Code::Internal,
    }
}

/// A field path with proto names (`payment_options[0].due_date`) in the proto3 JSON form
/// (`paymentOptions[0].dueDate`), which is what callers using JSON see in their requests.
pub fn json_path(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

fn message(error: &AppError) -> String {
    match error {
        AppError::Invalid(errors) => {
            let fields: Vec<String> = errors
                .violations()
                .iter()
                .map(|v| {
                    let json = json_path(&v.field);
                    if json == v.field {
                        format!("{}: {}", v.field, v.description)
                    } else {
                        format!("{} ({json}): {}", v.field, v.description)
                    }
                })
                .collect();
            format!("invalid request: {}", fields.join("; "))
        }
        AppError::Unavailable(detail) => {
            tracing::warn!(%detail, "storage unavailable");
            "storage unavailable; retry later".to_owned()
        }
        AppError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            "internal error; it has been logged".to_owned()
        }
        other => other.to_string(),
    }
}

/// The gRPC status for an error.
pub fn to_status(error: AppError) -> Status {
    let code = code(&error);
    let message = message(&error);
    match &error {
        AppError::Invalid(errors) => {
            let mut details = ErrorDetails::new();
            for violation in errors.violations() {
                details.add_bad_request_violation(
                    violation.field.clone(),
                    violation.description.clone(),
                );
            }
            Status::with_error_details(code, message, details)
        }
        _ => Status::new(code, message),
    }
}

/// What tonic's codec says when a request message is over the decoding limit. It answers
/// OUT_OF_RANGE, while gRPC's status-code table says RESOURCE_EXHAUSTED for a message larger
/// than the receiver accepts; the codec is tonic's, so its words are the only way to tell
/// this status from any other OUT_OF_RANGE.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: found ";

/// The status to answer instead of `status` when tonic refused a request message over the
/// decoding limit: RESOURCE_EXHAUSTED, naming the message's size and the limit. `None` for
/// every other status, which stays as it is.
pub fn message_too_large(status: &Status) -> Option<Status> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let rest = status.message().strip_prefix(TONIC_TOO_LARGE)?;
    // "{found} bytes, the limit is: {limit} bytes"
    let numbers: Vec<u64> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let message = match numbers[..] {
        [found, limit] => {
            format!("request message too large: {found} bytes, the limit is {limit} bytes")
        }
        _ => format!("request message too large: {rest}"),
    };
    Some(Status::resource_exhausted(message))
}

/// The error of one item of a bulk stream.
pub fn to_item_error(error: AppError) -> pb::ItemError {
    let field_violations = match &error {
        AppError::Invalid(errors) => errors
            .violations()
            .iter()
            .map(|v| pb::FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    pb::ItemError {
        code: code(&error) as i32,
        message: message(&error),
        field_violations,
    }
}

/// A bulk item's error for a status decided outside the store (an access refusal).
pub fn status_item_error(status: &Status) -> pb::ItemError {
    pb::ItemError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        field_violations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_are_lower_camel_case() {
        assert_eq!(
            json_path("payment_options[0].installments[1].due_date"),
            "paymentOptions[0].installments[1].dueDate"
        );
        assert_eq!(json_path("debtor.fiscal_code"), "debtor.fiscalCode");
        assert_eq!(json_path("description"), "description");
    }

    #[test]
    fn only_the_codec_size_refusal_becomes_resource_exhausted() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 5242893 bytes, the limit is: 4194304 bytes",
        );
        let mapped = message_too_large(&tonic).unwrap();
        assert_eq!(mapped.code(), Code::ResourceExhausted);
        assert!(
            mapped.message().starts_with(
                "request message too large: 5242893 bytes, the limit is 4194304 bytes"
            ),
            "{}",
            mapped.message()
        );
        assert!(message_too_large(&Status::out_of_range("page past the end")).is_none());
        let other_code = Status::internal(tonic.message());
        assert!(message_too_large(&other_code).is_none());
    }
}
