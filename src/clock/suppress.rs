//! Small-number suppression of report cells before they leave a node: primary (0 < n <
//! threshold) and complementary, to a fixpoint over every additive relation of the report.
//! Never changes a visible value; never suppresses a denominator (public, not pupil counts).
//! Invariant: afterwards no protected relation has exactly one hidden member, so no hidden
//! value equals a visible total minus visible parts.
//!
//! # Protected relations (total = sum of parts)
//! 1. per date, scope and count row: TOTAL = SHORTER + LONGER;
//! 2. per date, scope and column: TOTAL_NOT_ATTENDING = AV_PO + AV_VO + LRV_PO + LRV_VO;
//! 3. per date, count row and column: region = sum of the municipality scopes;
//! 4. per date, count row and column: region = sum of the SWV scopes and `no-swv`.
//!
//! `AV_VO_MBO_TRANSITION` is a subset of `AV_VO` and `WITHOUT_OFFER` one of
//! `TOTAL_NOT_ATTENDING`, not sums: no hidden cell follows from them.
//! This guards against differencing within one relation; it does not solve the linear system
//! of all relations together, and a hidden cell may still be bounded (never pinned) by them.

use super::report::{Cell, Column, Report, Row, NO_SWV, REGION};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::HashMap;

/// A cell as it may leave a node: `value` None means suppressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressedCell {
    pub date: NaiveDate,
    pub scope: String,
    pub row: Row,
    pub column: Column,
    pub value: Option<u64>,
}

/// A report as it may leave a node.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressedReport {
    pub rule: String,
    pub dates: Vec<NaiveDate>,
    pub scopes: Vec<String>,
    pub rows: Vec<Row>,
    pub cells: Vec<SuppressedCell>,
    /// Rows the caller may not see ("niet beschikbaar"): no cells, never a 0.
    pub unavailable: Vec<Row>,
    /// The municipalities the denominators are made of.
    pub covered: Vec<String>,
    /// The pact's indicators measured under this rule.
    pub indicators: Vec<super::Indicator>,
    /// Counts over the school year (small counts hidden like cells).
    pub year: Option<super::YearSection>,
}

impl Report {
    /// The report with small counts and their complements suppressed.
    pub fn suppressed(&self, threshold: u64) -> SuppressedReport {
        let mut year = self.year.clone();
        for (_, n) in year.iter_mut().flat_map(|y| y.counts.iter_mut()) {
            if n.is_some_and(|v| v > 0 && v < threshold) {
                *n = None;
            }
        }
        SuppressedReport {
            cells: suppress(&self.cells, threshold),
            year,
            ..self.unsuppressed()
        }
    }

    /// The report with every value visible, for the node's own use.
    pub(crate) fn unsuppressed(&self) -> SuppressedReport {
        SuppressedReport {
            rule: self.rule.clone(),
            dates: self.dates.clone(),
            scopes: self.scopes.clone(),
            rows: self.rows.clone(),
            cells: self
                .cells
                .iter()
                .map(|c| visible(c, Some(c.count)))
                .collect(),
            unavailable: self.unavailable.clone(),
            covered: self.covered.clone(),
            indicators: self.indicators.clone(),
            year: self.year.clone(),
        }
    }
}

fn visible(c: &Cell, value: Option<u64>) -> SuppressedCell {
    SuppressedCell {
        date: c.date,
        scope: c.scope.clone(),
        row: c.row,
        column: c.column,
        value,
    }
}

/// One additive relation, as indexes into the cell slice: `total` = sum of `parts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub total: usize,
    pub parts: Vec<usize>,
}

impl Relation {
    fn members(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.total).chain(self.parts.iter().copied())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeKind {
    Region,
    Municipality,
    Swv,
}

fn scope_kind(scope: &str) -> ScopeKind {
    let municipality = scope.len() == 6
        && scope.starts_with("GM")
        && scope[2..].chars().all(|c| c.is_ascii_digit());
    match scope {
        REGION => ScopeKind::Region,
        _ if municipality => ScopeKind::Municipality,
        _ => ScopeKind::Swv,
    }
}

type Key<'a> = (NaiveDate, &'a str, Row, Column);

/// The protected relations among `cells` (see the module docs).
pub fn relations(cells: &[Cell]) -> Vec<Relation> {
    let index: HashMap<Key<'_>, usize> = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.row.is_count())
        .map(|(i, c)| ((c.date, c.scope.as_str(), c.row, c.column), i))
        .collect();
    let mut out = Vec::new();
    for (i, c) in cells.iter().enumerate().filter(|(_, c)| c.row.is_count()) {
        let key = |scope: &str, row: Row, column: Column| {
            index.get(&(c.date, scope, row, column)).copied()
        };
        if c.column == Column::Total {
            out.extend(relation(
                i,
                [Column::Shorter, Column::Longer].map(|col| key(&c.scope, c.row, col)),
            ));
        }
        if c.row == Row::TotalNotAttending {
            let parts =
                [Row::AvPo, Row::AvVo, Row::LrvPo, Row::LrvVo].map(|r| key(&c.scope, r, c.column));
            out.extend(relation(i, parts));
        }
        if c.scope == REGION {
            out.extend(scope_relations(i, c, cells, &index));
        }
    }
    out
}

/// A relation if every part exists.
fn relation<const N: usize>(total: usize, parts: [Option<usize>; N]) -> Option<Relation> {
    let parts: Option<Vec<usize>> = parts.into_iter().collect();
    parts.map(|parts| Relation { total, parts })
}

/// Region = sum of municipalities; region = sum of SWVs (with no-swv).
fn scope_relations(
    total: usize,
    c: &Cell,
    cells: &[Cell],
    index: &HashMap<Key<'_>, usize>,
) -> Vec<Relation> {
    let mut scopes: Vec<&str> = cells
        .iter()
        .filter(|x| x.date == c.date)
        .map(|x| x.scope.as_str())
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let parts_of = |kind: ScopeKind| -> Vec<usize> {
        scopes
            .iter()
            .filter(|s| scope_kind(s) == kind)
            .filter_map(|s| index.get(&(c.date, *s, c.row, c.column)).copied())
            .collect()
    };
    let mut out = vec![Relation {
        total,
        parts: parts_of(ScopeKind::Municipality),
    }];
    if scopes.contains(&NO_SWV) {
        out.push(Relation {
            total,
            parts: parts_of(ScopeKind::Swv),
        });
    }
    out.retain(|r| !r.parts.is_empty());
    out
}

/// Suppresses every count with 0 < count < threshold, then complements to a fixpoint.
pub fn suppress(cells: &[Cell], threshold: u64) -> Vec<SuppressedCell> {
    let mut hidden: Vec<bool> = cells
        .iter()
        .map(|c| c.row.is_count() && c.count > 0 && c.count < threshold)
        .collect();
    let rels = relations(cells);
    while complement_once(cells, &rels, &mut hidden) {}
    cells
        .iter()
        .zip(&hidden)
        .map(|(c, &h)| visible(c, (!h).then_some(c.count)))
        .collect()
}

/// One pass: in each relation with exactly one hidden member, hide one more. True if any changed.
fn complement_once(cells: &[Cell], rels: &[Relation], hidden: &mut [bool]) -> bool {
    let mut changed = false;
    for rel in rels {
        let is_hidden = |i: usize| hidden.get(i).copied().unwrap_or(false);
        if rel.members().filter(|&i| is_hidden(i)).count() != 1 {
            continue;
        }
        if let Some(pick) = complement(cells, rel, is_hidden) {
            if let Some(h) = hidden.get_mut(pick) {
                *h = true;
                changed = true;
            }
        }
    }
    changed
}

/// The visible member to hide next: the smallest non-zero part, else a zero part, else the total.
fn complement(cells: &[Cell], rel: &Relation, is_hidden: impl Fn(usize) -> bool) -> Option<usize> {
    let count = |i: usize| cells.get(i).map_or(0, |c| c.count);
    let visible_parts = || rel.parts.iter().copied().filter(|&i| !is_hidden(i));
    visible_parts()
        .filter(|&i| count(i) > 0)
        .min_by_key(|&i| (count(i), i))
        .or_else(|| visible_parts().next())
        .or_else(|| (!is_hidden(rel.total)).then_some(rel.total))
}
