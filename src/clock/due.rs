//! The clock: days without an offer per signal, and the `due` list of children passing 4, 8, 10
//! and 12 weeks or three months, one line per child across all partners, each naming the
//! escalation step of its band. Decides nothing about who may see a line (the policy does) and
//! never logs pupil data.
//! Invariant: one line per pseudonym; an offer on any active clock signal of the child stops it.

use super::calendar::SchoolCalendar;
use super::rules::{ClockRules, CountingRules, SectorGroup};
use super::{age_at, is_active, months_reached, offer_stops_clock};
use crate::signal::{Category, Sector, Signal};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// How far past its deadline a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum DueBand {
    Weeks4,
    Weeks8,
    Weeks10,
    Weeks12,
    OverThreeMonths,
}

impl DueBand {
    pub fn code(self) -> &'static str {
        match self {
            DueBand::Weeks4 => "4_WEEKS",
            DueBand::Weeks8 => "8_WEEKS",
            DueBand::Weeks10 => "10_WEEKS",
            DueBand::Weeks12 => "12_WEEKS",
            DueBand::OverThreeMonths => "OVER_3_MONTHS",
        }
    }
}

/// One child on the due list.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DueLine {
    pub pupil_pseudonym: String,
    /// Whole weeks since the first day absent.
    pub weeks: u32,
    /// Days since the first day absent (day 0 = `absent_since`).
    pub days: i64,
    pub band: DueBand,
    /// The escalation step the region takes at this band ("welke route wanneer").
    pub escalation: String,
    pub categories: Vec<Category>,
    pub sectors: Vec<Sector>,
    pub schools: Vec<String>,
    pub municipalities: Vec<String>,
    /// (holding partner, source_record_id) of every active signal of the child.
    pub holders: Vec<(String, String)>,
}

impl fmt::Debug for DueLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DueLine")
            .field("weeks", &self.weeks)
            .field("days", &self.days)
            .field("band", &self.band)
            .field("escalation", &self.escalation)
            .field("categories", &self.categories)
            .field("holders", &self.holders.len())
            .finish_non_exhaustive()
    }
}

/// Days since `absent_since` at `at`, or None when the signal is not open at `at` (not yet
/// absent, or closed on or before `at`) or an offer stops its clock at `at`.
pub fn days_without_offer(s: &Signal, at: NaiveDate) -> Option<i64> {
    if !is_active(s, at) || offer_stops_clock(s, at) {
        return None;
    }
    Some((at - s.absent_since).num_days())
}

/// Whole school weeks (five school days) absent in `[absent_since, at)`.
pub fn school_weeks_absent(cal: &SchoolCalendar, s: &Signal, at: NaiveDate) -> u32 {
    u32::try_from(cal.school_days(s.absent_since, at) / 5).unwrap_or(u32::MAX)
}

/// The children without an offer past the first threshold at `at`, most urgent first.
pub fn due(signals: &[(String, Signal)], at: NaiveDate, rules: &CountingRules) -> Vec<DueLine> {
    let mut children: HashMap<&str, Vec<&(String, Signal)>> = HashMap::new();
    for held in signals.iter().filter(|(_, s)| is_active(s, at)) {
        children
            .entry(held.1.pupil_pseudonym.as_str())
            .or_default()
            .push(held);
    }
    let mut lines: Vec<DueLine> = children
        .into_iter()
        .filter_map(|(pseudonym, held)| due_line(pseudonym, &held, at, rules))
        .collect();
    lines.sort_by(|a, b| {
        b.days
            .cmp(&a.days)
            .then_with(|| a.pupil_pseudonym.cmp(&b.pupil_pseudonym))
    });
    lines
}

/// The line of one child, given its active signals; None when not on the clock or not yet due.
fn due_line(
    pseudonym: &str,
    held: &[&(String, Signal)],
    at: NaiveDate,
    rules: &CountingRules,
) -> Option<DueLine> {
    let clock = rules.clock();
    let on_clock: Vec<&Signal> = held
        .iter()
        .map(|(_, s)| s)
        .filter(|s| clock.categories.contains(&s.category))
        .collect();
    if on_clock.iter().any(|s| offer_stops_clock(s, at)) {
        return None;
    }
    let first = on_clock
        .iter()
        .filter(|s| age_at(s, at) <= clock.max_age)
        .min_by_key(|s| (s.absent_since, s.category, &s.source_record_id))?;
    let since = first.absent_since;
    let days = (at - since).num_days();
    let band = band(days, since, at, clock)?;
    Some(DueLine {
        pupil_pseudonym: pseudonym.to_string(),
        weeks: u32::try_from(days / 7).unwrap_or(u32::MAX),
        days,
        band,
        escalation: escalation(first, band, at, rules).to_string(),
        categories: sorted(held.iter().map(|(_, s)| s.category)),
        sectors: sorted(held.iter().filter_map(|(_, s)| s.sector)),
        schools: sorted(
            held.iter()
                .filter_map(|(_, s)| s.school.as_ref().map(ToString::to_string)),
        ),
        municipalities: sorted(
            held.iter()
                .map(|(_, s)| s.residence_municipality.to_string()),
        ),
        holders: sorted(
            held.iter()
                .map(|(p, s)| (p.clone(), s.source_record_id.clone())),
        ),
    })
}

fn band(days: i64, since: NaiveDate, at: NaiveDate, clock: &ClockRules) -> Option<DueBand> {
    if months_reached(since, clock.three_months, at) {
        return Some(DueBand::OverThreeMonths);
    }
    let [w4, w8, w10, w12] = clock.due_weeks.map(|w| 7 * i64::from(w));
    match days {
        d if d >= w12 => Some(DueBand::Weeks12),
        d if d >= w10 => Some(DueBand::Weeks10),
        d if d >= w8 => Some(DueBand::Weeks8),
        d if d >= w4 => Some(DueBand::Weeks4),
        _ => None,
    }
}

/// The step of the child's sector group at its band: by the school's sector, or by age for a
/// child enrolled nowhere (as AV is split, `002`:1409).
fn escalation<'a>(
    first: &Signal,
    band: DueBand,
    at: NaiveDate,
    rules: &'a CountingRules,
) -> &'a str {
    let po = match first.sector {
        Some(sector) if first.category != Category::Av => {
            rules.sector_group(sector) == SectorGroup::Po
        }
        _ => age_at(first, at) < rules.av_po_under_age(),
    };
    let e = &rules.clock().escalation;
    let steps = if po { &e.po } else { &e.vo };
    let i = match band {
        DueBand::Weeks4 => 0,
        DueBand::Weeks8 => 1,
        DueBand::Weeks10 => 2,
        DueBand::Weeks12 => 3,
        DueBand::OverThreeMonths => 4,
    };
    steps[i].as_str()
}

fn sorted<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    items.collect::<BTreeSet<T>>().into_iter().collect()
}
