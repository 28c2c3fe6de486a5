//! One bank movement seen through two sources. The same credit can reach `incasso` in the
//! Tesoriere's OPI giornale di cassa and in a camt statement or notification of the same
//! account, each under its own id (`codice_riferimento_interno`, `AcctSvcrRef`). The contract
//! keys a credit by that id and lets no TRN decide a label (§1, §3), so both copies count and
//! the flows they cash read as divergent by the copy's amount. What this module decides is
//! only the warning next to them: two credits of the same amount and value day that carry the
//! same SCT reference, the TRN or the EndToEndId, are probably one movement, and the finance
//! office is told so (`treasury-formats.md` §4: "never count it twice").

use serde::{Deserialize, Serialize};
use time::Date;

/// The EndToEndId an SCT carries when its originator gave none: it names no movement.
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// What ties two credits to one movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DuplicateReason {
    /// The same TRN (camt `Refs/ClrSysRef`, OPI `codice_riferimento_operazione`).
    Trn,
    /// The same EndToEndId (camt `Refs/EndToEndId`, OPI `end_to_end_id`).
    EndToEndId,
}

/// The facts of a credit that identify its movement across sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovementFacts<'a> {
    /// Cents credited.
    pub amount_cents: i64,
    /// The value day.
    pub value_date: Date,
    /// The TRN, when the source gives it.
    pub trn: Option<&'a str>,
    /// The EndToEndId, when the source gives it.
    pub end_to_end_id: Option<&'a str>,
}

/// True when a TRN or EndToEndId names a movement: not blank, and not `NOTPROVIDED`.
pub fn names_a_movement(reference: &str) -> bool {
    let reference = reference.trim();
    !reference.is_empty() && !reference.eq_ignore_ascii_case(NOT_PROVIDED)
}

fn naming(reference: Option<&str>) -> Option<&str> {
    reference.filter(|r| names_a_movement(r)).map(str::trim)
}

/// Why `a` and `b` are probably one movement, or `None`: the same amount and value day, and
/// the same TRN (else the same EndToEndId). Symmetric. Booking days may differ (a
/// notification books intraday what the statement books at the day's end), the ids always
/// do: the caller never compares a credit with itself.
pub fn same_movement(a: &MovementFacts<'_>, b: &MovementFacts<'_>) -> Option<DuplicateReason> {
    if a.amount_cents != b.amount_cents || a.value_date != b.value_date {
        return None;
    }
    let same = |x: Option<&str>, y: Option<&str>| matches!((naming(x), naming(y)), (Some(x), Some(y)) if x == y);
    if same(a.trn, b.trn) {
        Some(DuplicateReason::Trn)
    } else if same(a.end_to_end_id, b.end_to_end_id) {
        Some(DuplicateReason::EndToEndId)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::date;

    use super::*;

    fn facts<'a>(cents: i64, trn: Option<&'a str>, e2e: Option<&'a str>) -> MovementFacts<'a> {
        MovementFacts {
            amount_cents: cents,
            value_date: date!(2026 - 03 - 12),
            trn,
            end_to_end_id: e2e,
        }
    }

    #[test]
    fn the_same_trn_amount_and_value_day_are_one_movement() {
        let opi = facts(125_000, Some("2026031200123"), None);
        let camt = facts(125_000, Some("2026031200123"), Some("E2E-1"));
        assert_eq!(same_movement(&opi, &camt), Some(DuplicateReason::Trn));
    }

    #[test]
    fn the_end_to_end_id_ties_them_when_no_trn_does() {
        let a = facts(900, Some("TRN-A"), Some("E2E-7"));
        let b = facts(900, None, Some("E2E-7"));
        assert_eq!(same_movement(&a, &b), Some(DuplicateReason::EndToEndId));
        let other_trn = facts(900, Some("TRN-B"), Some("E2E-7"));
        assert_eq!(
            same_movement(&a, &other_trn),
            Some(DuplicateReason::EndToEndId)
        );
    }

    #[test]
    fn not_provided_and_blank_references_name_nothing() {
        let a = facts(900, Some(" "), Some("NOTPROVIDED"));
        let b = facts(900, Some(" "), Some("NotProvided"));
        assert_eq!(same_movement(&a, &b), None);
        assert_eq!(
            same_movement(&facts(900, None, None), &facts(900, None, None)),
            None
        );
    }

    #[test]
    fn another_amount_or_value_day_is_another_movement() {
        let a = facts(900, Some("TRN"), None);
        assert_eq!(same_movement(&a, &facts(901, Some("TRN"), None)), None);
        let later = MovementFacts {
            value_date: date!(2026 - 03 - 13),
            ..a
        };
        assert_eq!(same_movement(&a, &later), None);
    }

    fn reference() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("NOTPROVIDED".to_owned())),
            Just(Some(String::new())),
            "[A-C]{1,2}".prop_map(Some),
        ]
    }

    proptest! {
        /// Symmetric, and never without equal amounts, value days and a shared reference
        /// that names a movement.
        #[test]
        fn same_movement_is_symmetric_and_needs_a_shared_reference(
            cents in (1_i64..4, 1_i64..4),
            days in (0_u8..2, 0_u8..2),
            trns in (reference(), reference()),
            e2es in (reference(), reference()),
        ) {
            let day = |d: u8| date!(2026 - 03 - 10) + time::Duration::days(i64::from(d));
            let a = MovementFacts { amount_cents: cents.0, value_date: day(days.0), trn: trns.0.as_deref(), end_to_end_id: e2es.0.as_deref() };
            let b = MovementFacts { amount_cents: cents.1, value_date: day(days.1), trn: trns.1.as_deref(), end_to_end_id: e2es.1.as_deref() };
            let reason = same_movement(&a, &b);
            prop_assert_eq!(reason, same_movement(&b, &a));
            if let Some(reason) = reason {
                prop_assert_eq!(a.amount_cents, b.amount_cents);
                prop_assert_eq!(a.value_date, b.value_date);
                let (x, y) = match reason {
                    DuplicateReason::Trn => (a.trn, b.trn),
                    DuplicateReason::EndToEndId => (a.end_to_end_id, b.end_to_end_id),
                };
                prop_assert_eq!(x, y);
                prop_assert!(x.is_some_and(|r| !r.trim().is_empty() && r != "NOTPROVIDED"));
            }
        }
    }
}
