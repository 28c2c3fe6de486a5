//! The civil date in Europe/Rome for an instant. Due dates, fine deadlines and "today" are
//! Italian calendar days, while instants are kept in UTC; near midnight the two differ, and a
//! fine paid at 00:30 Rome time on day 6 must not get day 5's amount; and PagoPA writes
//! instants as zone-less Rome wall-clock times, which [`from_rome_local`] reads. The EU rule is fixed by
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

/// The instant a Europe/Rome wall-clock time names, as PagoPA writes zone-less times.
///
/// Most local times name exactly one instant. Twice a year they do not, and the choice is
/// the one `java.time` makes for `LocalDateTime.atZone(Europe/Rome)`, so that incasso reads
/// a time as the Node (a Java service) meant it:
///
/// - **gap** (last Sunday of March, 02:00 to 02:59:59 never happen): the time is read with the
///   offset in force before the gap (+01:00), which is the same as moving it forward by the
///   length of the gap: 02:30 is 01:30 UTC, shown in Rome as 03:30+02:00;
/// - **overlap** (last Sunday of October, 02:00 to 02:59:59 happen twice): the earlier
///   instant, still in summer time (+02:00): 02:30 is 00:30 UTC, not 01:30 UTC.
///
/// The result carries its Rome offset (+01:00 or +02:00).
pub fn from_rome_local(local: PrimitiveDateTime) -> OffsetDateTime {
    let winter = UtcOffset::from_whole_seconds(3600).unwrap_or(UtcOffset::UTC);
    let summer = UtcOffset::from_whole_seconds(7200).unwrap_or(UtcOffset::UTC);
    let as_summer = local.assume_offset(summer);
    // In the overlap both readings are consistent; summer time is the earlier instant.
    if rome_offset(as_summer) == summer {
        return as_summer;
    }
    // Winter time, or the gap, where reading the time as winter time moves it forward.
    to_rome(local.assume_offset(winter))
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

    #[test]
    fn rome_local_times_name_their_instant_even_around_the_changes() {
        // Ordinary winter and summer times.
        assert_eq!(
            from_rome_local(datetime!(2026-11-20 10:15)),
            datetime!(2026-11-20 09:15 UTC)
        );
        assert_eq!(
            from_rome_local(datetime!(2026-07-20 10:15)),
            datetime!(2026-07-20 08:15 UTC)
        );
        assert_eq!(
            from_rome_local(datetime!(2026-07-20 10:15))
                .offset()
                .whole_hours(),
            2
        );
        // 29 March 2026: 02:00-02:59 local do not exist; they move forward by an hour.
        assert_eq!(
            from_rome_local(datetime!(2026-03-29 01:59:59)),
            datetime!(2026-03-29 00:59:59 UTC)
        );
        assert_eq!(
            from_rome_local(datetime!(2026-03-29 02:30)),
            datetime!(2026-03-29 01:30 UTC)
        );
        assert_eq!(
            from_rome_local(datetime!(2026-03-29 02:30)),
            datetime!(2026-03-29 03:30 +2)
        );
        assert_eq!(
            from_rome_local(datetime!(2026-03-29 03:00)),
            datetime!(2026-03-29 01:00 UTC)
        );
        // 25 October 2026: 02:00-02:59 local happen twice; the first (summer) is taken.
        assert_eq!(
            from_rome_local(datetime!(2026-10-25 01:59)),
            datetime!(2026-10-24 23:59 UTC)
        );
        assert_eq!(
            from_rome_local(datetime!(2026-10-25 02:30)),
            datetime!(2026-10-25 00:30 UTC)
        );
        assert_eq!(
            from_rome_local(datetime!(2026-10-25 03:00)),
            datetime!(2026-10-25 02:00 UTC)
        );
    }

    proptest! {
        #[test]
        fn every_instant_is_found_again_from_its_rome_time(minutes in 0i64..(100 * 366 * 24 * 60)) {
            let instant = datetime!(2000-01-01 00:00 UTC) + Duration::minutes(minutes);
            let local = to_rome(instant);
            let naive = PrimitiveDateTime::new(local.date(), local.time());
            let found = from_rome_local(naive);
            if found != instant {
                // Only the second pass through an October overlap reads as the first.
                prop_assert_eq!(found, instant - Duration::hours(1));
                prop_assert_eq!(naive.month(), Month::October);
                prop_assert_eq!(rome_offset(instant).whole_hours(), 1);
                prop_assert_eq!(rome_offset(found).whole_hours(), 2);
            }
            // Whatever the choice, it shows the same wall-clock time in Rome.
            prop_assert_eq!(to_rome(found).date(), naive.date());
            prop_assert_eq!(to_rome(found).time(), naive.time());
        }

        #[test]
        fn any_rome_time_gets_one_deterministic_instant(minutes in 0i64..(100 * 366 * 24 * 60)) {
            let naive = datetime!(2000-01-01 00:00) + Duration::minutes(minutes);
            let found = from_rome_local(naive);
            prop_assert_eq!(found, from_rome_local(naive));
            // The offset is Rome's at that instant, and the instant is one or two hours
            // before the same wall-clock time in UTC.
            prop_assert_eq!(found.offset(), rome_offset(found));
            let behind = naive.assume_utc() - found;
            prop_assert!(behind == Duration::hours(1) || behind == Duration::hours(2));
            // Shown in Rome it is the time given, except inside a March gap, moved an hour on.
            let shown = to_rome(found);
            let shown = PrimitiveDateTime::new(shown.date(), shown.time());
            if shown != naive {
                prop_assert_eq!(shown, naive + Duration::hours(1));
                prop_assert_eq!(naive.month(), Month::March);
                prop_assert_eq!(naive.hour(), 2);
            }
        }

        #[test]
        fn start_of_day_is_in_that_day(days in 0i64..40_000) {
            let day = date!(2000 - 01 - 01) + Duration::days(days);
            let start = start_of_rome_day(day);
            prop_assert_eq!(rome_date(start), day);
            prop_assert_eq!(rome_date(start - Duration::seconds(1)), day.previous_day().unwrap());
        }
    }
}
