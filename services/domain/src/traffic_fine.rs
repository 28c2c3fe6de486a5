//! The amount payable for a Codice della Strada fine on a given day (art. 202 CdS): the
//! reduced amount (-30%) within 5 days of notification, the minimum ("full") within 60 days,
//! half the maximum ("increased") after; notification costs (art. 201 c. 4) are added in full
//! in every band. The notification day itself is not counted, and a deadline falling on a
//! Sunday or national holiday moves to the next working day. This is what the PagoPA Node is
//! told at verify and activation time. The amounts themselves come from the Polizia Locale.

use time::{Date, Duration};

use crate::calendar::next_working_day_on_or_after;
use crate::money::{AmountCents, MAX_AMOUNT_CENTS};

/// Days after notification within which the reduced amount applies.
pub const REDUCED_DAYS: i64 = 5;
/// Days after notification within which the full (minimum) amount applies.
pub const FULL_DAYS: i64 = 60;

/// Why a fine's amounts were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficFineError {
    /// The bands are out of order.
    #[error("amounts must satisfy reduced <= full <= increased")]
    Order,
    /// Negative costs.
    #[error("notification costs must not be negative")]
    NegativeCosts,
    /// A band plus costs over the PagoPA maximum.
    #[error("increased amount plus costs exceeds 999999999.99 EUR")]
    TooLarge,
}

/// The three sanction amounts and the notification costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FineAmounts {
    reduced: AmountCents,
    full: AmountCents,
    increased: AmountCents,
    notification_costs_cents: i64,
}

impl FineAmounts {
    /// Checks the bands' order and the costs.
    pub fn new(
        reduced: AmountCents,
        full: AmountCents,
        increased: AmountCents,
        notification_costs_cents: i64,
    ) -> Result<Self, TrafficFineError> {
        if reduced > full || full > increased {
            return Err(TrafficFineError::Order);
        }
        if notification_costs_cents < 0 {
            return Err(TrafficFineError::NegativeCosts);
        }
        if increased.get().saturating_add(notification_costs_cents) > MAX_AMOUNT_CENTS {
            return Err(TrafficFineError::TooLarge);
        }
        Ok(Self {
            reduced,
            full,
            increased,
            notification_costs_cents,
        })
    }

    /// The reduced sanction (-30%).
    pub fn reduced(&self) -> AmountCents {
        self.reduced
    }

    /// The minimum sanction.
    pub fn full(&self) -> AmountCents {
        self.full
    }

    /// Half the maximum sanction.
    pub fn increased(&self) -> AmountCents {
        self.increased
    }

    /// Notification and procedure costs.
    pub fn notification_costs_cents(&self) -> i64 {
        self.notification_costs_cents
    }
}

/// Which amount applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FineBand {
    /// Within 5 days of notification.
    Reduced,
    /// Within 60 days.
    Full,
    /// After 60 days.
    Increased,
}

/// A fine's amounts and the notification date they run from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FineSchedule {
    amounts: FineAmounts,
    notification_date: Date,
}

impl FineSchedule {
    /// The schedule of a fine notified on `notification_date`.
    pub fn new(amounts: FineAmounts, notification_date: Date) -> Self {
        Self {
            amounts,
            notification_date,
        }
    }

    /// The amounts.
    pub fn amounts(&self) -> &FineAmounts {
        &self.amounts
    }

    /// The notification date.
    pub fn notification_date(&self) -> Date {
        self.notification_date
    }

    /// The last day of the reduced band.
    pub fn reduced_deadline(&self) -> Date {
        next_working_day_on_or_after(self.notification_date + Duration::days(REDUCED_DAYS))
    }

    /// The last day of the full band.
    pub fn full_deadline(&self) -> Date {
        next_working_day_on_or_after(self.notification_date + Duration::days(FULL_DAYS))
    }

    /// The band that applies to a payment on `day`.
    pub fn band_on(&self, day: Date) -> FineBand {
        if day <= self.reduced_deadline() {
            FineBand::Reduced
        } else if day <= self.full_deadline() {
            FineBand::Full
        } else {
            FineBand::Increased
        }
    }

    /// The sanction of the band on `day` plus the notification costs.
    pub fn amount_payable_on(&self, day: Date) -> AmountCents {
        let sanction = match self.band_on(day) {
            FineBand::Reduced => self.amounts.reduced,
            FineBand::Full => self.amounts.full,
            FineBand::Increased => self.amounts.increased,
        };
        // FineAmounts::new guarantees increased + costs <= MAX, and every band <= increased.
        AmountCents::new(sanction.get() + self.amounts.notification_costs_cents).unwrap_or(sanction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    fn cents(c: i64) -> AmountCents {
        AmountCents::new(c).unwrap()
    }

    fn issue_example() -> FineSchedule {
        let amounts = FineAmounts::new(cents(2940), cents(4200), cents(8400), 1260).unwrap();
        FineSchedule::new(amounts, date!(2026 - 11 - 10))
    }

    #[test]
    fn the_acceptance_example() {
        let fine = issue_example();
        assert_eq!(fine.amount_payable_on(date!(2026 - 11 - 12)).get(), 4200);
        assert_eq!(fine.amount_payable_on(date!(2026 - 12 - 01)).get(), 5460);
        assert_eq!(fine.amount_payable_on(date!(2027 - 02 - 01)).get(), 9660);
    }

    #[test]
    fn deadlines_move_past_sundays_and_holidays() {
        let fine = issue_example();
        // Day 5 is Sunday 15 November 2026: the reduced amount holds on Monday 16.
        assert_eq!(fine.reduced_deadline(), date!(2026 - 11 - 16));
        assert_eq!(fine.amount_payable_on(date!(2026 - 11 - 16)).get(), 4200);
        assert_eq!(fine.amount_payable_on(date!(2026 - 11 - 17)).get(), 5460);
        // Day 60 is Saturday 9 January 2027, a working day.
        assert_eq!(fine.full_deadline(), date!(2027 - 01 - 09));
        assert_eq!(fine.amount_payable_on(date!(2027 - 01 - 09)).get(), 5460);
        assert_eq!(fine.amount_payable_on(date!(2027 - 01 - 10)).get(), 9660);
        // Paying before notification (on the spot) is within the reduced band.
        assert_eq!(fine.band_on(date!(2026 - 11 - 02)), FineBand::Reduced);
    }

    #[test]
    fn bands_must_be_ordered() {
        assert_eq!(
            FineAmounts::new(cents(5000), cents(4200), cents(8400), 0),
            Err(TrafficFineError::Order)
        );
        assert_eq!(
            FineAmounts::new(cents(1), cents(2), cents(3), -1),
            Err(TrafficFineError::NegativeCosts)
        );
        assert_eq!(
            FineAmounts::new(cents(1), cents(2), cents(MAX_AMOUNT_CENTS), 1),
            Err(TrafficFineError::TooLarge)
        );
    }

    proptest! {
        #[test]
        fn the_amount_never_decreases_and_always_includes_costs(
            reduced in 1i64..100_000,
            full_extra in 0i64..100_000,
            increased_extra in 0i64..100_000,
            costs in 0i64..10_000,
            notified in 0i64..3_650,
            offset in -30i64..400,
        ) {
            let amounts = FineAmounts::new(
                cents(reduced),
                cents(reduced + full_extra),
                cents(reduced + full_extra + increased_extra),
                costs,
            ).unwrap();
            let fine = FineSchedule::new(amounts, date!(2020 - 01 - 01) + Duration::days(notified));
            let day = fine.notification_date() + Duration::days(offset);
            let today = fine.amount_payable_on(day).get();
            let tomorrow = fine.amount_payable_on(day + Duration::days(1)).get();
            prop_assert!(tomorrow >= today);
            prop_assert!(today >= reduced + costs);
            let sanction = match fine.band_on(day) {
                FineBand::Reduced => amounts.reduced().get(),
                FineBand::Full => amounts.full().get(),
                FineBand::Increased => amounts.increased().get(),
            };
            prop_assert_eq!(today, sanction + costs);
            prop_assert_eq!(fine.band_on(fine.reduced_deadline()), FineBand::Reduced);
            prop_assert_eq!(fine.band_on(fine.reduced_deadline() + Duration::days(1)), FineBand::Full);
            prop_assert_eq!(fine.band_on(fine.full_deadline()), FineBand::Full);
            prop_assert_eq!(fine.band_on(fine.full_deadline() + Duration::days(1)), FineBand::Increased);
        }
    }
}
