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
