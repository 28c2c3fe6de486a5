//! Page tokens of the list queries: the id of the last row of a page and a fingerprint of the
//! query's filters (never the filters themselves, which may hold a fiscal code's keyed hash).
//! A token is refused, naming `page_token`, for a query with other filters, so a caller cannot
//! page through one list with another's position.

use uuid::Uuid;

use incasso_domain::validation::ValidationErrors;

/// The token of the page after the row `after` of a query with `fingerprint`.
pub(crate) fn encode(after: Uuid, fingerprint: &str) -> String {
    format!("{}{fingerprint}", after.simple())
}

/// The row id a page token continues after (`None` for an empty token: the first page). The
/// token must carry `fingerprint`, the one of the query's own filters; otherwise the refusal
/// is added to `errors`.
pub(crate) fn decode(
    errors: &mut ValidationErrors,
    token: &str,
    fingerprint: &str,
) -> Option<Uuid> {
    if token.is_empty() {
        return None;
    }
    let parsed = (token.len() == 48 && token.is_ascii())
        .then(|| token.split_at(32))
        .and_then(|(id, print)| {
            let id = Uuid::try_parse(id).ok()?;
            print
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then_some((id, print))
        });
    match parsed {
        Some((id, print)) if print == fingerprint => Some(id),
        Some(_) => {
            errors.add("page_token", "belongs to a query with other filters");
            None
        }
        None => {
            errors.add("page_token", "not a page token issued by incasso");
            None
        }
    }
}

/// The page size asked for: `default` for 0, otherwise 1..=`max`; anything else is refused
/// naming `page_size` (and `default` stands in, so the other fields are still checked).
pub(crate) fn page_size(
    errors: &mut ValidationErrors,
    requested: i32,
    default: u64,
    max: u64,
) -> u64 {
    match u64::try_from(requested) {
        Ok(0) => default,
        Ok(size) if size <= max => size,
        _ => {
            errors.add("page_size", format!("must be between 1 and {max}"));
            default
        }
    }
}

/// The token of the page after the row whose keyset position is `key` (the values of the
/// query's order columns, as text), for lists ordered by a natural key rather than a row id.
pub(crate) fn encode_key(key: &[String], fingerprint: &str) -> String {
    let json = serde_json::to_string(key).unwrap_or_default();
    format!("k{}{fingerprint}", hex::encode(json))
}

/// The keyset position a page token of [`encode_key`] continues after (`None` for an empty
/// token), checked to hold `arity` values and to carry `fingerprint`; a refusal names
/// `page_token` in `errors`.
pub(crate) fn decode_key(
    errors: &mut ValidationErrors,
    token: &str,
    fingerprint: &str,
    arity: usize,
) -> Option<Vec<String>> {
    if token.is_empty() {
        return None;
    }
    let parsed = token
        .strip_prefix('k')
        .filter(|rest| rest.is_ascii() && rest.len() > fingerprint.len())
        .map(|rest| rest.split_at(rest.len() - fingerprint.len()))
        .and_then(|(key, print)| {
            let json = hex::decode(key).ok()?;
            let key: Vec<String> = serde_json::from_slice(&json).ok()?;
            (key.len() == arity && print.bytes().all(|b| b.is_ascii_hexdigit()))
                .then_some((key, print))
        });
    match parsed {
        Some((key, print)) if print == fingerprint => Some(key),
        Some(_) => {
            errors.add("page_token", "belongs to a query with other filters");
            None
        }
        None => {
            errors.add("page_token", "not a page token issued by incasso");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tokens_round_trip_and_refuse_other_filters() {
        let key = vec!["01199250158".to_owned(), "r/1\"x".to_owned()];
        let token = encode_key(&key, "0123456789abcdef");
        let mut errors = ValidationErrors::new();
        assert_eq!(
            decode_key(&mut errors, &token, "0123456789abcdef", 2),
            Some(key)
        );
        assert!(errors.is_empty());
        assert_eq!(decode_key(&mut errors, &token, "fedcba9876543210", 2), None);
        assert_eq!(
            decode_key(&mut errors, "k00zz0123456789abcdef", "0123456789abcdef", 2),
            None
        );
        assert_eq!(decode_key(&mut errors, &token, "0123456789abcdef", 3), None);
        let fields: Vec<&str> = errors
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["page_token"; 3]);
    }
}
