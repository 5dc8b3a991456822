//! The three-month clock and the G4 result schema: counting rules as data, the clock (`due`),
//! the report per reference date, suppression and rendering. Pure: never stores, logs or sends
//! pupil data, and reads nothing but the rules text it is given (`load` aside).
//! Invariant: a child (one pseudonym) counts at most once per cell, whichever partners report it.
//!
//! # Time, counted like age
//! A duration runs from `absent_since` (day 0) to the date `D` it is looked at: a child is
//! "absent 4 weeks" at `D` iff `D >= absent_since + 28 days`, and "absent three months" iff
//! `D >= absent_since + 3 calendar months` (chrono's month arithmetic: 31 Aug + 3 months =
//! 30 Nov). School weeks are the school days (Mon-Fri outside the region's holidays) in
//! `[absent_since, D)`, divided by five.
//!
//! # Age at a date
//! A signal carries an age and the day it was true (`age_on`, else the day it was stored). The
//! age at a date adds (or takes off) the whole years between the two: the child is taken to
//! turn a year older on each anniversary of that day. No birth date is ever needed.
//!
//! # What stops the clock
//! An offer stops the clock only as the G4 define it (`004` par. 2): it says what it holds out
//! (onderwijs, zorg or both) and a place is actually available (read here as: its first day has
//! come). The G4 make agreement "in overleg met ouders en kind" the starting point; this region
//! also requires the parents' agreement, a local rule stricter than the G4 text. An offer on a waiting list (no place yet) does not stop it. The
//! offer never takes a child out of the LRV/AV counts; "waarvan zonder aanbod" is its own row.
//! A care offer recorded in a case by the organisation that makes it (WIJ, jeugdhulp; see
//! `cases::CareOffer`) stops it by the same rules, at the nodes that take part in the case.
//!
//! # One child, several partners
//! Signals are joined on `pupil_pseudonym`. An offer recorded on any of the child's active
//! signals in a clock category stops the child's clock. Where the child's signals disagree,
//! the winning signal is the one with the earliest `absent_since` (the G4 count from the first
//! day actually absent), then the latest `updated_at`, then the smallest content; the winner
//! alone decides the row, the column, the municipality and the SWV the child counts in.

mod calendar;
mod due;
mod render;
mod report;
mod rules;
mod suppress;
mod targets;
#[cfg(test)]
mod tests;
mod year;

pub use calendar::{Holiday, SchoolCalendar};
pub use due::{days_without_offer, due, school_weeks_absent, DueBand, DueLine};
pub use render::{RenderError, PER_1000};
pub use report::{
    report, report_for, Cell, Column, Coverage, Report, Row, YearSection, NO_SWV, REGION,
};
pub use rules::{
    ClockRules, CompulsoryAge, CountingRules, Escalation, Flag, Period, Rule, RulesError,
    RulesErrors, SectorGroup,
};
pub use suppress::{relations, suppress, Relation, SuppressedCell, SuppressedReport};
pub use targets::{Indicator, IndicatorLine, Target};
pub use year::{school_year_of, year_counts, YearRow};

use crate::signal::{Signal, Status};
use chrono::{Months, NaiveDate};

/// The day the signal stopped being open: `closed_on`, or for a closed status without that
/// date, the day it was last updated.
pub(crate) fn closed_day(s: &Signal) -> Option<NaiveDate> {
    if s.closed_on.is_some() {
        return s.closed_on;
    }
    match s.status {
        Status::Teruggeleid | Status::Gesloten => Some(s.updated_at.date_naive()),
        Status::Open | Status::Aanbod => None,
    }
}

/// The day an offer was made: `offer_date`, or for status AANBOD without that date, the day
/// it was last updated.
pub(crate) fn offer_day(s: &Signal) -> Option<NaiveDate> {
    if s.offer_date.is_some() {
        return s.offer_date;
    }
    (s.status == Status::Aanbod).then(|| s.updated_at.date_naive())
}

/// Whether the signal's offer stops the clock at `at` (see the module docs).
pub fn offer_stops_clock(s: &Signal, at: NaiveDate) -> bool {
    signal_offer_stop_day(s).is_some_and(|d| d <= at)
}

/// The first day the signal's offer stops the clock, if it ever does.
pub fn signal_offer_stop_day(s: &Signal) -> Option<NaiveDate> {
    offer_stop_day(
        offer_day(s),
        s.offer_kind,
        s.offer_place_from,
        s.offer_parents_agreed,
    )
}

/// The first day an offer stops the clock (see the module docs): it was made, says what it
/// holds out, was agreed with the parents and its place is available; None: never (a waiting
/// list, no kind, no agreement). Offers on signals and care offers in cases alike.
pub fn offer_stop_day(
    made: Option<NaiveDate>,
    kind: Option<crate::signal::OfferKind>,
    place_from: Option<NaiveDate>,
    parents_agreed: bool,
) -> Option<NaiveDate> {
    if kind.is_none() || !parents_agreed {
        return None;
    }
    Some(made?.max(place_from?))
}

/// The child's age in whole years at `at`, derived from the age the signal carries and the
/// day it was true (see the module docs).
pub fn age_at(s: &Signal, at: NaiveDate) -> u32 {
    let on = s.age_on.unwrap_or_else(|| s.updated_at.date_naive());
    if at >= on {
        s.age.saturating_add(at.years_since(on).unwrap_or(0))
    } else {
        s.age.saturating_sub(on.years_since(at).unwrap_or(0))
    }
}

/// Whether the signal is running at `at`: absence started on or before `at`, and it was not
/// closed on or before `at` (a child back at school on the reference date does not count).
pub fn is_active(s: &Signal, at: NaiveDate) -> bool {
    s.absent_since <= at && closed_day(s).is_none_or(|c| c > at)
}

/// `since` plus `months` calendar months (clamped to the month's end); None past year 262143.
pub(crate) fn months_after(since: NaiveDate, months: u32) -> Option<NaiveDate> {
    since.checked_add_months(Months::new(months))
}

/// Whether `months` calendar months have passed since `since` at `at`.
///
/// `since` is the first day of absence and `at` a day the child is still absent, both counted
/// whole, so on `since` + 3 months the child has been home three months and one day: "langer dan
/// drie maanden" [004:159] holds from that day on, and the window "Binnen drie maanden (en zoveel
/// eerder als mogelijk) is er in ieder geval een passend aanbod" [004:161] has closed. Hence `>=`.
pub(crate) fn months_reached(since: NaiveDate, months: u32, at: NaiveDate) -> bool {
    months_after(since, months).is_some_and(|d| at >= d)
}
