//! The Italian calendar of non-working days, for legal deadlines: a deadline that falls on a
//! Sunday or a national public holiday moves to the next working day. Easter is computed
//! (anonymous Gregorian algorithm), so no year table needs maintaining. Local patron days
//! (Sant'Ambrogio in Milan) are not national holidays and do not move deadlines.

use time::{Date, Month, Weekday};

/// Easter Sunday of `year` (Gregorian calendar).
pub fn easter_sunday(year: i32) -> Date {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    let month = if month == 3 {
        Month::March
    } else {
        Month::April
    };
    Date::from_calendar_date(year, month, u8::try_from(day).unwrap_or(1)).unwrap_or(Date::MIN)
}

/// True on Italy's national public holidays.
pub fn is_national_public_holiday(date: Date) -> bool {
    let (year, month, day) = date.to_calendar_date();
    let fixed = matches!(
        (month, day),
        (Month::January, 1 | 6)
            | (Month::April, 25)
            | (Month::May, 1)
            | (Month::June, 2)
            | (Month::August, 15)
            | (Month::November, 1)
            | (Month::December, 8 | 25 | 26)
    );
    // San Francesco d'Assisi, a national holiday again from 2026 (law 151/2025).
    let st_francis = year >= 2026 && month == Month::October && day == 4;
    let easter = easter_sunday(year);
    fixed || st_francis || date == easter || easter.next_day() == Some(date)
}

/// True on Sundays and national public holidays.
pub fn is_non_working_day(date: Date) -> bool {
    date.weekday() == Weekday::Sunday || is_national_public_holiday(date)
}

/// `date` itself if it is a working day, otherwise the next working day.
pub fn next_working_day_on_or_after(date: Date) -> Date {
    let mut day = date;
    while is_non_working_day(day) {
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn known_easters() {
        assert_eq!(easter_sunday(2024), date!(2024 - 03 - 31));
        assert_eq!(easter_sunday(2025), date!(2025 - 04 - 20));
        assert_eq!(easter_sunday(2026), date!(2026 - 04 - 05));
        assert_eq!(easter_sunday(2027), date!(2027 - 03 - 28));
    }

    #[test]
    fn holidays_and_deadlines() {
        assert!(
            is_national_public_holiday(date!(2026 - 04 - 06)),
            "Easter Monday"
        );
        assert!(is_national_public_holiday(date!(2026 - 10 - 04)));
        assert!(!is_national_public_holiday(date!(2025 - 10 - 04)));
        assert!(
            !is_national_public_holiday(date!(2026 - 12 - 07)),
            "Sant'Ambrogio is local"
        );
        assert!(is_non_working_day(date!(2026 - 11 - 15)), "a Sunday");
        assert!(
            !is_non_working_day(date!(2026 - 11 - 14)),
            "Saturdays count as working days"
        );
        assert_eq!(
            next_working_day_on_or_after(date!(2026 - 11 - 15)),
            date!(2026 - 11 - 16)
        );
        // Christmas Day 2026 is a Friday, Santo Stefano Saturday, then Sunday.
        assert_eq!(
            next_working_day_on_or_after(date!(2026 - 12 - 25)),
            date!(2026 - 12 - 28)
        );
        assert_eq!(
            next_working_day_on_or_after(date!(2026 - 11 - 16)),
            date!(2026 - 11 - 16)
        );
    }
}
