//! Counts over a school year (G4: "aantallen per jaar", `004`:280; the evaluation's 5a figure is
//! per school year, `002`:191) and the children back at school ("schoolgang hersteld",
//! `002`:235). Pure; counts only.
//! Invariant: a child counts at most once per row, however many partners report it.

use super::report::{children_of, counts, same_child};
use super::rules::{CountingRules, Rule};
use super::{age_at, closed_day};
use crate::signal::{Category, Signal, Status};
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use std::collections::BTreeMap;

/// A row of the school-year counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum YearRow {
    Av,
    Lrv,
    /// AV or LRV (a child in both counts once).
    NotAttending,
    Vrijstelling5a,
    Vrijstelling5b,
    Vrijstelling5c,
    LangdurigZiek,
    /// Children whose AV or LRV signal closed as TERUGGELEID in the school year.
    SchoolgangHersteld,
}

impl YearRow {
    pub const ALL: [YearRow; 8] = [
        YearRow::Av,
        YearRow::Lrv,
        YearRow::NotAttending,
        YearRow::Vrijstelling5a,
        YearRow::Vrijstelling5b,
        YearRow::Vrijstelling5c,
        YearRow::LangdurigZiek,
        YearRow::SchoolgangHersteld,
    ];

    pub fn code(self) -> &'static str {
        match self {
            YearRow::Av => "YEAR_AV",
            YearRow::Lrv => "YEAR_LRV",
            YearRow::NotAttending => "YEAR_NOT_ATTENDING",
            YearRow::Vrijstelling5a => "YEAR_VRIJSTELLING_5A",
            YearRow::Vrijstelling5b => "YEAR_VRIJSTELLING_5B",
            YearRow::Vrijstelling5c => "YEAR_VRIJSTELLING_5C",
            YearRow::LangdurigZiek => "YEAR_LANGDURIG_ZIEK",
            YearRow::SchoolgangHersteld => "YEAR_SCHOOLGANG_HERSTELD",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            YearRow::Av => "Absoluut verzuim",
            YearRow::Lrv => "Langdurig relatief verzuim",
            YearRow::NotAttending => "Niet-schoolgaand (AV of LRV)",
            YearRow::Vrijstelling5a => "Vrijstelling 5a",
            YearRow::Vrijstelling5b => "Vrijstelling 5b",
            YearRow::Vrijstelling5c => "Vrijstelling 5c",
            YearRow::LangdurigZiek => "Langdurig zieken",
            YearRow::SchoolgangHersteld => "Schoolgang hersteld (teruggeleid)",
        }
    }

    /// The categories the row needs the caller to see.
    pub fn categories(self) -> &'static [Category] {
        match self {
            YearRow::Av => &[Category::Av],
            YearRow::Lrv => &[Category::Lrv],
            YearRow::NotAttending | YearRow::SchoolgangHersteld => &[Category::Av, Category::Lrv],
            YearRow::Vrijstelling5a => &[Category::Vrijstelling5a],
            YearRow::Vrijstelling5b => &[Category::Vrijstelling5b],
            YearRow::Vrijstelling5c => &[Category::Vrijstelling5c],
            YearRow::LangdurigZiek => &[Category::LangdurigZiek],
        }
    }

    /// The row's bit in a set of rows: its position in `ALL`.
    fn bit(self) -> u32 {
        1 << YearRow::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    fn of(c: Category) -> Option<YearRow> {
        match c {
            Category::Av => Some(YearRow::Av),
            Category::Lrv => Some(YearRow::Lrv),
            Category::Vrijstelling5a => Some(YearRow::Vrijstelling5a),
            Category::Vrijstelling5b => Some(YearRow::Vrijstelling5b),
            Category::Vrijstelling5c => Some(YearRow::Vrijstelling5c),
            Category::LangdurigZiek => Some(YearRow::LangdurigZiek),
            Category::Schorsing | Category::Verwijdering | Category::Verzuim => None,
        }
    }
}

/// The school year (1 August to 31 July) a date falls in, as its first and last day.
pub fn school_year_of(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = if date.month() >= 8 {
        date.year()
    } else {
        date.year() - 1
    };
    let start = NaiveDate::from_ymd_opt(first, 8, 1).unwrap_or(date);
    let end = NaiveDate::from_ymd_opt(first + 1, 7, 31).unwrap_or(date);
    (start, end)
}

/// Whether the signal counts under `rule` on at least one day of `[start, end]`.
///
/// Every condition of `counts` holds on an interval of days (active, old enough and not yet too
/// old, the period reached, the exemption not ended), so the signal counts on some day of the
/// year iff it counts on the last day it can: the year's end, the day before it closed, the
/// day before the child is too old, or the exemption's end, whichever comes first.
fn counts_in_year(
    s: &Signal,
    start: NaiveDate,
    end: NaiveDate,
    rule: &Rule,
    rules: &CountingRules,
) -> bool {
    let mut last = end;
    if let Some(c) = closed_day(s) {
        last = last.min(c.pred_opt().unwrap_or(c));
    }
    if let Some(e) = s.exemption_end {
        last = last.min(e);
    }
    let under = rules.compulsory_age().under;
    if age_at(s, last) >= under {
        // The age only grows: the last day still under age, by bisection over the year.
        if age_at(s, start) >= under {
            return false;
        }
        let (mut young, mut old) = (start, last);
        while (old - young).num_days() > 1 {
            let mid = young + chrono::Duration::days((old - young).num_days() / 2);
            if age_at(s, mid) >= under {
                old = mid;
            } else {
                young = mid;
            }
        }
        last = young;
    }
    last >= start && counts(s, last, rule, rules)
}

/// Distinct children per row over the school year `[start, end]`, in the region.
pub fn year_counts(
    signals: &[(String, Signal)],
    start: NaiveDate,
    end: NaiveDate,
    rule: &Rule,
    rules: &CountingRules,
) -> BTreeMap<YearRow, u64> {
    let children = children_of(signals);
    year_counts_of(signals, &children, start, end, rule, rules)
}

/// As `year_counts`, with the signals' indices already grouped by child (`children_of`).
pub(crate) fn year_counts_of(
    signals: &[(String, Signal)],
    children: &[usize],
    start: NaiveDate,
    end: NaiveDate,
    rule: &Rule,
    rules: &CountingRules,
) -> BTreeMap<YearRow, u64> {
    let mut totals = [0u64; YearRow::ALL.len()];
    for child in children.chunk_by(|a, b| same_child(signals, *a, *b)) {
        // The rows this child is in, one bit per `YearRow::ALL` position.
        let mut rows = 0u32;
        for &i in child {
            let s = &signals[i].1;
            if let Some(row) = YearRow::of(s.category) {
                if counts_in_year(s, start, end, rule, rules) {
                    rows |= row.bit();
                    if matches!(row, YearRow::Av | YearRow::Lrv) {
                        rows |= YearRow::NotAttending.bit();
                    }
                }
            }
            let back = s.status == Status::Teruggeleid
                && matches!(s.category, Category::Av | Category::Lrv)
                && closed_day(s).is_some_and(|c| start <= c && c <= end);
            if back {
                rows |= YearRow::SchoolgangHersteld.bit();
            }
        }
        for (k, total) in totals.iter_mut().enumerate() {
            *total += u64::from(rows >> k & 1);
        }
    }
    YearRow::ALL.into_iter().zip(totals).collect()
}
