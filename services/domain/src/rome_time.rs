//! The civil date in Europe/Rome for an instant. Due dates, fine deadlines and "today" are
//! Italian calendar days, while instants are kept in UTC; near midnight the two differ, and a
//! fine paid at 00:30 Rome time on day 6 must not get day 5's amount. The EU rule is fixed by
//! Directive 2000/84/EC (summer time from 01:00 UTC on the last Sunday of March to 01:00 UTC
//! on the last Sunday of October), so it is computed here instead of shipping a time-zone
//! database.

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

/// The last Sunday of `month` in `year`.
fn last_sunday(year: i32, month: Month) -> Date {
    let mut day = Date::from_calendar_date(year, month, time::util::days_in_month(month, year))
        .unwrap_or(Date::MIN);
    while day.weekday() != Weekday::Sunday {
        day = day.previous_day().unwrap_or(Date::MIN);
    }
    day
}

/// The UTC offset of Europe/Rome at `instant`: +02:00 in summer time, +01:00 otherwise.
pub fn rome_offset(instant: OffsetDateTime) -> UtcOffset {
    let utc = instant.to_offset(UtcOffset::UTC);
    let year = utc.year();
    let one_am = Time::from_hms(1, 0, 0).unwrap_or(Time::MIDNIGHT);
    let start = PrimitiveDateTime::new(last_sunday(year, Month::March), one_am).assume_utc();
    let end = PrimitiveDateTime::new(last_sunday(year, Month::October), one_am).assume_utc();
    let hours = if utc >= start && utc < end { 2 } else { 1 };
    UtcOffset::from_whole_seconds(hours * 3600).unwrap_or(UtcOffset::UTC)
}

/// `instant` as Europe/Rome local time.
pub fn to_rome(instant: OffsetDateTime) -> OffsetDateTime {
    instant.to_offset(rome_offset(instant))
}

/// The calendar day in Europe/Rome at `instant`.
pub fn rome_date(instant: OffsetDateTime) -> Date {
    to_rome(instant).date()
}

/// The first instant of `day` in Europe/Rome.
pub fn start_of_rome_day(day: Date) -> OffsetDateTime {
    // Summer time never starts or ends at midnight in Rome, so midnight exists and is unique.
    let naive = PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_utc();
    let guess = naive - Duration::hours(1);
    naive - Duration::seconds(i64::from(rome_offset(guess).whole_seconds()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    #[test]
    fn summer_and_winter_offsets() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(
            rome_offset(datetime!(2026-03-29 00:59 UTC)).whole_hours(),
            1
        );
        assert_eq!(
            rome_offset(datetime!(2026-03-29 01:00 UTC)).whole_hours(),
            2
        );
        assert_eq!(
            rome_offset(datetime!(2026-10-25 00:59 UTC)).whole_hours(),
            2
        );
        assert_eq!(
            rome_offset(datetime!(2026-10-25 01:00 UTC)).whole_hours(),
            1
        );
    }

    #[test]
    fn the_rome_day_starts_before_the_utc_day() {
        assert_eq!(
            rome_date(datetime!(2026-11-15 23:30 UTC)),
            date!(2026 - 11 - 16)
        );
        assert_eq!(
            rome_date(datetime!(2026-11-15 22:59 UTC)),
            date!(2026 - 11 - 15)
        );
        assert_eq!(
            rome_date(datetime!(2026-07-31 22:00 UTC)),
            date!(2026 - 08 - 01)
        );
        assert_eq!(
            start_of_rome_day(date!(2026 - 11 - 16)),
            datetime!(2026-11-15 23:00 UTC)
        );
        assert_eq!(
            start_of_rome_day(date!(2026 - 07 - 01)),
            datetime!(2026-06-30 22:00 UTC)
        );
    }

    proptest! {
        #[test]
        fn start_of_day_is_in_that_day(days in 0i64..40_000) {
            let day = date!(2000 - 01 - 01) + Duration::days(days);
            let start = start_of_rome_day(day);
            prop_assert_eq!(rome_date(start), day);
            prop_assert_eq!(rome_date(start - Duration::seconds(1)), day.previous_day().unwrap());
        }
    }
}
