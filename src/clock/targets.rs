//! The pact's indicators as data (`[[indicator]]` in `policies/counting.toml`): the rows an
//! indicator is measured on, its baseline (ijkpunt) and target with the seed line, and their
//! evaluation against a report. Pure; never counts signals itself.
//! Invariant: a baseline the file does not give is never invented: change and target stay unknown.

use super::report::{Column, Row, REGION};
use super::suppress::SuppressedReport;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// What an indicator aims at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// An absolute number (e.g. no child), from a date on.
    Value { value: u64, from: Option<NaiveDate> },
    /// A change against the baseline, by the end of a school year.
    ChangePercent { percent: f64, by: String },
    /// A change against the baseline in each school year after it (compounded).
    PercentPerYear { percent: f64 },
}

/// One indicator of the pact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicator {
    pub id: String,
    pub name: String,
    /// The counting rule it is measured under.
    pub rule: String,
    pub rows: Vec<Row>,
    pub column: Column,
    /// The baseline period as the seed names it ("2019-2020", "2019", "2016-10-01").
    pub baseline_period: Option<String>,
    /// The baseline figure, only where a source gives it.
    pub baseline: Option<u64>,
    /// Where the baseline figure comes from.
    pub baseline_seed: Option<String>,
    pub target: Target,
    /// Where the target comes from (seed and line).
    pub seed: String,
}

impl Indicator {
    /// The year the baseline period starts (its first four digits).
    fn baseline_year(&self) -> Option<i32> {
        self.baseline_period.as_deref()?.get(..4)?.parse().ok()
    }

    /// The target figure at `date`, where it can be known.
    pub fn target_at(&self, date: NaiveDate) -> Option<f64> {
        match &self.target {
            Target::Value { value, .. } => Some(*value as f64),
            Target::ChangePercent { percent, .. } => {
                self.baseline.map(|b| b as f64 * (1.0 + percent / 100.0))
            }
            Target::PercentPerYear { percent } => {
                let base = self.baseline? as f64;
                let years = school_year(date) - self.baseline_year()?;
                Some(base * (1.0 + percent / 100.0).powi(years.max(0)))
            }
        }
    }

    /// The target in words (Dutch, for the report's reader).
    pub fn target_text(&self) -> String {
        match &self.target {
            Target::Value {
                value,
                from: Some(f),
            } => format!("{value} vanaf {f}"),
            Target::Value { value, from: None } => value.to_string(),
            Target::ChangePercent { percent, by } => {
                format!("{percent:+.0}% t.o.v. ijkpunt, uiterlijk {by}")
            }
            Target::PercentPerYear { percent } => format!("{percent:+.0}% per schooljaar"),
        }
    }

    /// The baseline in words.
    pub fn baseline_text(&self) -> String {
        let Some(period) = self.baseline_period.as_deref() else {
            return "geen (absoluut doel)".to_string();
        };
        match (self.baseline, &self.baseline_seed) {
            (Some(v), Some(s)) => format!("{v} ({period}, {s})"),
            (Some(v), None) => format!("{v} ({period})"),
            (None, _) => format!("onbekend ({period}: niet in de bronnen)"),
        }
    }
}

/// The school year (its first calendar year) a date falls in; August starts a school year.
fn school_year(date: NaiveDate) -> i32 {
    if date.month() >= 8 {
        date.year()
    } else {
        date.year() - 1
    }
}

/// An indicator evaluated on one report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorLine {
    pub indicator: Indicator,
    /// Per reference date of the report: the figure (None: not available or suppressed).
    pub figures: Vec<(NaiveDate, Option<u64>)>,
    /// Per reference date: change against the baseline in percent, where both are known.
    pub changes: Vec<Option<f64>>,
    /// Per reference date: the target figure, where it can be known.
    pub targets: Vec<Option<f64>>,
}

impl SuppressedReport {
    /// The indicators measured under this report's rule, evaluated at its reference dates.
    pub fn indicator_lines(&self, indicators: &[Indicator]) -> Vec<IndicatorLine> {
        indicators
            .iter()
            .filter(|i| i.rule == self.rule)
            .map(|i| {
                let figures: Vec<(NaiveDate, Option<u64>)> = self
                    .dates
                    .iter()
                    .map(|&d| (d, self.region_sum(d, &i.rows, i.column)))
                    .collect();
                let changes = figures
                    .iter()
                    .map(|(_, f)| {
                        let (f, b) = (f.as_ref()?, i.baseline.filter(|b| *b > 0)?);
                        Some((*f as f64 - b as f64) * 100.0 / b as f64)
                    })
                    .collect();
                let targets = self.dates.iter().map(|&d| i.target_at(d)).collect();
                IndicatorLine {
                    indicator: i.clone(),
                    figures,
                    changes,
                    targets,
                }
            })
            .collect()
    }

    /// The sum of `rows` in the region at `date`; None if any part is hidden or not available.
    fn region_sum(&self, date: NaiveDate, rows: &[Row], column: Column) -> Option<u64> {
        rows.iter().try_fold(0u64, |sum, &row| {
            let cell = self.cells.iter().find(|c| {
                c.date == date && c.scope == REGION && c.row == row && c.column == column
            })?;
            Some(sum + cell.value?)
        })
    }
}

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIndicator {
    id: String,
    name: String,
    rule: Spanned<String>,
    rows: Vec<Spanned<String>>,
    column: Spanned<String>,
    baseline: Option<RawBaseline>,
    target: Spanned<RawTarget>,
    seed: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    period: String,
    value: Option<u64>,
    seed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    value: Option<u64>,
    from: Option<toml::value::Datetime>,
    change_percent: Option<f64>,
    by: Option<String>,
    percent_per_year: Option<f64>,
}

/// A problem found in an indicator: the span and what to do.
pub(super) struct IndicatorProblem {
    pub span: std::ops::Range<usize>,
    pub what: String,
    pub fix: String,
}

/// Checks the indicators against the rules they name; every problem is returned.
pub(super) fn check(
    raw: &[Spanned<RawIndicator>],
    rule_exists: impl Fn(&str) -> bool,
) -> (Vec<Indicator>, Vec<IndicatorProblem>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for r in raw {
        let r = r.get_ref();
        let mut fail = |span: std::ops::Range<usize>, what: String, fix: &str| {
            problems.push(IndicatorProblem {
                span,
                what,
                fix: fix.to_string(),
            })
        };
        if !rule_exists(r.rule.get_ref()) {
            fail(
                r.rule.span(),
                format!(
                    "indicator {}: no counting rule \"{}\"",
                    r.id,
                    r.rule.get_ref()
                ),
                "name a rule of [rules]",
            );
        }
        let mut rows = Vec::new();
        for code in &r.rows {
            match Row::ALL.into_iter().find(|x| x.code() == code.get_ref()) {
                Some(row) if row.is_count() => rows.push(row),
                _ => fail(
                    code.span(),
                    format!("indicator {}: \"{}\" is no count row", r.id, code.get_ref()),
                    "use a row code of the report, e.g. AV_PO",
                ),
            }
        }
        let column = Column::ALL
            .into_iter()
            .find(|c| c.code() == r.column.get_ref());
        if column.is_none() {
            fail(
                r.column.span(),
                format!(
                    "indicator {}: unknown column \"{}\"",
                    r.id,
                    r.column.get_ref()
                ),
                "use SHORTER_THAN_3_MONTHS, LONGER_THAN_3_MONTHS or TOTAL",
            );
        }
        let target = target(r.target.get_ref());
        if target.is_none() {
            fail(
                r.target.span(),
                format!("indicator {}: a target needs exactly one kind", r.id),
                "write { value = 0 }, { change_percent = -10, by = \"2023-2024\" } or { percent_per_year = -10 }",
            );
        }
        let (Some(column), Some(target)) = (column, target) else {
            continue;
        };
        out.push(Indicator {
            id: r.id.clone(),
            name: r.name.clone(),
            rule: r.rule.get_ref().clone(),
            rows,
            column,
            baseline_period: r.baseline.as_ref().map(|b| b.period.clone()),
            baseline: r.baseline.as_ref().and_then(|b| b.value),
            baseline_seed: r.baseline.as_ref().and_then(|b| b.seed.clone()),
            target,
            seed: r.seed.clone(),
        });
    }
    (out, problems)
}

fn target(t: &RawTarget) -> Option<Target> {
    let from = t.from.and_then(|d| {
        let d = d.date?;
        NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
    });
    match (t.value, t.change_percent, &t.by, t.percent_per_year) {
        (Some(value), None, None, None) => Some(Target::Value { value, from }),
        (None, Some(percent), Some(by), None) if t.from.is_none() => Some(Target::ChangePercent {
            percent,
            by: by.clone(),
        }),
        (None, None, None, Some(percent)) if t.from.is_none() => {
            Some(Target::PercentPerYear { percent })
        }
        _ => None,
    }
}
