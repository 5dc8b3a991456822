//! School calendar of the region: which days are school days (Mon-Fri outside the holidays of
//! the rules file). Pure date arithmetic; never looks at pupils.
//! Invariant: holidays are sorted by start and do not overlap (the rules check enforces it).

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

/// One school holiday, both ends inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holiday {
    pub school_year: String,
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The holidays of one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchoolCalendar {
    holidays: Vec<Holiday>,
}

impl SchoolCalendar {
    /// A calendar of these holidays, sorted by start.
    pub fn new(mut holidays: Vec<Holiday>) -> Self {
        holidays.sort_by_key(|h| h.from);
        SchoolCalendar { holidays }
    }

    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }

    /// Whether `day` falls in the span of school years the calendar knows.
    pub fn covers(&self, day: NaiveDate) -> bool {
        match (self.holidays.first(), self.holidays.last()) {
            (Some(first), Some(last)) => first.from <= day && day <= last.to,
            _ => false,
        }
    }

    pub fn is_school_day(&self, day: NaiveDate) -> bool {
        is_weekday(day) && !self.holidays.iter().any(|h| h.from <= day && day <= h.to)
    }

    /// School days in `[from, to)`: weekdays minus the weekdays inside holidays.
    pub fn school_days(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to <= from {
            return 0;
        }
        let holiday_days: i64 = self
            .holidays
            .iter()
            .filter(|h| h.from < to && h.to >= from)
            .map(|h| weekdays(h.from.max(from), (h.to.succ_opt().unwrap_or(h.to)).min(to)))
            .sum();
        weekdays(from, to) - holiday_days
    }
}

fn is_weekday(day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Mondays to Fridays in `[from, to)`.
pub(crate) fn weekdays(from: NaiveDate, to: NaiveDate) -> i64 {
    let days = (to - from).num_days();
    if days <= 0 {
        return 0;
    }
    let full_weeks = days / 7;
    // The remaining 0 to 6 days, from `from`'s weekday on (Monday = 0; 5 and 6 are the weekend).
    let first = i64::from(from.weekday().num_days_from_monday());
    let rest = (0..days % 7).filter(|i| (first + i) % 7 < 5).count();
    full_weeks * 5 + i64::try_from(rest).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn weekdays_counts_mondays_to_fridays() {
        assert_eq!(weekdays(d(2025, 10, 6), d(2025, 10, 13)), 5);
        assert_eq!(weekdays(d(2025, 10, 4), d(2025, 10, 6)), 0);
        assert_eq!(weekdays(d(2025, 10, 3), d(2025, 10, 7)), 2);
        assert_eq!(weekdays(d(2025, 10, 7), d(2025, 10, 3)), 0);
    }

    #[test]
    fn school_days_skip_a_holiday_week() {
        let cal = SchoolCalendar::new(vec![Holiday {
            school_year: "2025-2026".into(),
            name: "herfstvakantie".into(),
            from: d(2025, 10, 18),
            to: d(2025, 10, 26),
        }]);
        assert_eq!(cal.school_days(d(2025, 10, 6), d(2025, 11, 3)), 15);
        assert!(!cal.is_school_day(d(2025, 10, 20)));
        assert!(cal.is_school_day(d(2025, 10, 27)));
        // Starting inside the holiday.
        assert_eq!(cal.school_days(d(2025, 10, 22), d(2025, 10, 29)), 2);
    }
}
