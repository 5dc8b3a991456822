//! The G4 result schema: per reference date, per scope (region, residence municipality, SWV),
//! rows AV/LRV PO/VO, totals, denominators, exemptions and long-term sick, split shorter and
//! longer than three months. Counts only; never suppresses (see `suppress`) or renders.
//! Invariant: a child counts at most once per cell; in every count row, TOTAL = SHORTER + LONGER.

use super::rules::{CountingRules, Flag, Rule, SectorGroup};
use super::{age_at, is_active, months_reached, offer_stops_clock};
use crate::signal::{Category, ExemptionTerm, Signal};
use chrono::NaiveDate;
use serde::{Serialize, Serializer};
use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};

/// The scope of all signals.
pub const REGION: &str = "region";
/// The SWV scope of children whose winning signal names no school of a known SWV.
pub const NO_SWV: &str = "no-swv";

/// A row of the result schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Row {
    AvPo,
    AvVo,
    /// Of AV VO: awaiting the MBO February intake (only when the rule names them apart).
    AvVoMboTransition,
    LrvPo,
    LrvVo,
    /// AV PO + AV VO + LRV PO + LRV VO.
    TotalNotAttending,
    /// Of TOTAL_NOT_ATTENDING: without an offer that stops the clock (the pact's key indicator).
    WithoutOffer,
    /// The denominator from the rules (not a count of signals; TOTAL column only).
    ResidentPupils,
    Vrijstelling5aTemporary,
    Vrijstelling5aPermanent,
    Vrijstelling5b,
    Vrijstelling5c,
    LangdurigZiek,
}

impl Row {
    pub const ALL: [Row; 13] = [
        Row::AvPo,
        Row::AvVo,
        Row::AvVoMboTransition,
        Row::LrvPo,
        Row::LrvVo,
        Row::TotalNotAttending,
        Row::WithoutOffer,
        Row::ResidentPupils,
        Row::Vrijstelling5aTemporary,
        Row::Vrijstelling5aPermanent,
        Row::Vrijstelling5b,
        Row::Vrijstelling5c,
        Row::LangdurigZiek,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Row::AvPo => "AV_PO",
            Row::AvVo => "AV_VO",
            Row::AvVoMboTransition => "AV_VO_MBO_TRANSITION",
            Row::LrvPo => "LRV_PO",
            Row::LrvVo => "LRV_VO",
            Row::TotalNotAttending => "TOTAL_NOT_ATTENDING",
            Row::WithoutOffer => "WITHOUT_OFFER",
            Row::ResidentPupils => "RESIDENT_PUPILS",
            Row::Vrijstelling5aTemporary => "VRIJSTELLING_5A_TEMPORARY",
            Row::Vrijstelling5aPermanent => "VRIJSTELLING_5A_PERMANENT",
            Row::Vrijstelling5b => "VRIJSTELLING_5B",
            Row::Vrijstelling5c => "VRIJSTELLING_5C",
            Row::LangdurigZiek => "LANGDURIG_ZIEK",
        }
    }

    /// The label a reader of the G4 schema knows.
    pub fn label(self) -> &'static str {
        match self {
            Row::AvPo => "AV PO",
            Row::AvVo => "AV VO",
            Row::AvVoMboTransition => "  waarvan bij overstap VO-mbo",
            Row::LrvPo => "LRV PO",
            Row::LrvVo => "LRV VO",
            Row::TotalNotAttending => "Totaal niet-schoolgaande leerplichtigen",
            Row::WithoutOffer => "  waarvan zonder aanbod",
            Row::ResidentPupils => "Totaal woonachtige leerplichtigen",
            Row::Vrijstelling5aTemporary => "Vrijstelling 5a tijdelijk",
            Row::Vrijstelling5aPermanent => "Vrijstelling 5a permanent",
            Row::Vrijstelling5b => "Vrijstelling 5b",
            Row::Vrijstelling5c => "Vrijstelling 5c",
            Row::LangdurigZiek => "Langdurig zieken",
        }
    }

    /// Whether the row counts children (and so is subject to suppression).
    pub fn is_count(self) -> bool {
        self != Row::ResidentPupils
    }

    fn index(self) -> usize {
        Row::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A column: duration of the absence at the reference date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// Less than three months since `absent_since`.
    Shorter,
    /// Three months or more since `absent_since`.
    Longer,
    Total,
}

impl Column {
    pub const ALL: [Column; 3] = [Column::Shorter, Column::Longer, Column::Total];

    pub fn code(self) -> &'static str {
        match self {
            Column::Shorter => "SHORTER_THAN_3_MONTHS",
            Column::Longer => "LONGER_THAN_3_MONTHS",
            Column::Total => "TOTAL",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Column::Shorter => "<3 mnd",
            Column::Longer => ">3 mnd",
            Column::Total => "totaal",
        }
    }

    fn index(self) -> usize {
        Column::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

macro_rules! serialize_as_code {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }
    )*};
}
serialize_as_code!(Row, Column);

/// One number of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub date: NaiveDate,
    /// `region`, a CBS municipality code, an SWV name, or `no-swv`.
    pub scope: String,
    pub row: Row,
    pub column: Column,
    pub count: u64,
}

/// What the caller's data covers: which rows it can see from every source, and the
/// municipalities whose resident pupils it covers (the per-1,000 denominators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The categories every source shares with the caller.
    pub visible: Vec<Category>,
    /// CBS codes of the municipalities whose residents the data covers.
    pub municipalities: Vec<String>,
}

impl Coverage {
    /// Every category, and every municipality with a denominator.
    pub fn all(rules: &CountingRules) -> Coverage {
        Coverage {
            visible: Category::ALL.to_vec(),
            municipalities: rules.denominators().keys().cloned().collect(),
        }
    }
}

/// The result schema at one or more reference dates under one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub(crate) rule: String,
    pub(crate) dates: Vec<NaiveDate>,
    pub(crate) scopes: Vec<String>,
    pub(crate) rows: Vec<Row>,
    pub(crate) cells: Vec<Cell>,
    /// Rows the caller may not see from every source: "niet beschikbaar", never 0.
    pub(crate) unavailable: Vec<Row>,
    /// The municipalities in the denominators (region = their sum).
    pub(crate) covered: Vec<String>,
    /// The pact's indicators measured under this rule.
    pub(crate) indicators: Vec<super::Indicator>,
    /// Counts over the school year of the first reference date (region).
    pub(crate) year: Option<YearSection>,
}

/// Distinct children per row over one school year, in the region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct YearSection {
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Per visible row: the count (None once suppressed).
    pub counts: Vec<(super::YearRow, Option<u64>)>,
}

impl Report {
    pub fn rule(&self) -> &str {
        &self.rule
    }

    pub fn dates(&self) -> &[NaiveDate] {
        &self.dates
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn cells(&self) -> Vec<Cell> {
        self.cells.clone()
    }

    /// Rows not available to the caller ("niet beschikbaar").
    pub fn unavailable(&self) -> &[Row] {
        &self.unavailable
    }

    /// The municipalities the per-1,000 denominators are made of.
    pub fn covered(&self) -> &[String] {
        &self.covered
    }

    /// The count of one cell, if the report has it.
    pub fn count(&self, date: NaiveDate, scope: &str, row: Row, column: Column) -> Option<u64> {
        self.cells
            .iter()
            .find(|c| c.date == date && c.scope == scope && c.row == row && c.column == column)
            .map(|c| c.count)
    }
}

/// Counts the signals (each held by a partner) at every date under `rule`, every row available
/// and every municipality's denominator used.
pub fn report(
    signals: &[(String, Signal)],
    dates: &[NaiveDate],
    rule: &Rule,
    rules: &CountingRules,
) -> Report {
    report_for(signals, dates, rule, rules, &Coverage::all(rules))
}

/// The categories a row counts; a row is available only if the caller sees all of them.
fn row_categories(row: Row) -> &'static [Category] {
    match row {
        Row::AvPo | Row::AvVo | Row::AvVoMboTransition => &[Category::Av],
        Row::LrvPo | Row::LrvVo => &[Category::Lrv],
        Row::TotalNotAttending | Row::WithoutOffer => &[Category::Av, Category::Lrv],
        Row::ResidentPupils => &[],
        Row::Vrijstelling5aTemporary | Row::Vrijstelling5aPermanent => &[Category::Vrijstelling5a],
        Row::Vrijstelling5b => &[Category::Vrijstelling5b],
        Row::Vrijstelling5c => &[Category::Vrijstelling5c],
        Row::LangdurigZiek => &[Category::LangdurigZiek],
    }
}

/// Counts as `report`, for a caller whose data covers only `coverage`: rows it cannot see from
/// every source are left out and named unavailable, and the denominators are exactly those of
/// the covered municipalities.
pub fn report_for(
    signals: &[(String, Signal)],
    dates: &[NaiveDate],
    rule: &Rule,
    rules: &CountingRules,
    coverage: &Coverage,
) -> Report {
    let scopes = Scopes::new(signals, rules);
    // Each signal's scopes once, not per date and row (two map lookups each).
    let places: Vec<[usize; 3]> = signals.iter().map(|(_, s)| scopes.of(s, rules)).collect();
    let children = children_of(signals);
    let three_months = rules.clock().three_months;
    let mut grid = Grid::new(dates.len(), scopes.names.len());
    let mut sigs: Vec<&Signal> = Vec::new();
    let mut rows_buf: Vec<(Row, &Signal)> = Vec::new();
    for child in children.chunk_by(|a, b| same_child(signals, *a, *b)) {
        sigs.clear();
        sigs.extend(child.iter().map(|&i| &signals[i].1));
        for (di, &at) in dates.iter().enumerate() {
            rows_buf.clear();
            child_rows(&sigs, at, rule, rules, &mut rows_buf);
            for &(row, winner) in &rows_buf {
                let longer = months_reached(winner.absent_since, three_months, at);
                let column = if longer {
                    Column::Longer
                } else {
                    Column::Shorter
                };
                let at_winner = sigs
                    .iter()
                    .position(|s| std::ptr::eq(*s, winner))
                    .and_then(|k| child.get(k));
                let place = at_winner.map_or([0, 0, 0], |&i| places[i]);
                for scope in place {
                    grid.add(di, scope, row, column);
                    grid.add(di, scope, row, Column::Total);
                }
            }
        }
    }
    let rows = rule_rows(rule);
    let (rows, unavailable): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| {
        row_categories(*r)
            .iter()
            .all(|c| coverage.visible.contains(c))
    });
    let covered: Vec<String> = coverage
        .municipalities
        .iter()
        .filter(|m| rules.denominators().contains_key(*m))
        .cloned()
        .collect();
    let cells = build_cells(&grid, dates, &scopes, &rows, rules, &covered);
    Report {
        rule: rule.name.clone(),
        dates: dates.to_vec(),
        scopes: scopes.names,
        rows,
        cells,
        unavailable,
        covered,
        indicators: rules
            .indicators()
            .iter()
            .filter(|i| i.rule == rule.name)
            .cloned()
            .collect(),
        year: dates.first().map(|&d| {
            let (start, end) = super::school_year_of(d);
            let counts = super::year::year_counts_of(signals, &children, start, end, rule, rules)
                .into_iter()
                .filter(|(r, _)| r.categories().iter().all(|c| coverage.visible.contains(c)))
                .map(|(r, n)| (r, Some(n)))
                .collect();
            YearSection { start, end, counts }
        }),
    }
}

/// The signals' indices grouped by child: sorted by a hash of the pseudonym, then the pseudonym
/// (so a hash collision never joins two children), in input order within a child (so the
/// winner among equal keys is the same whatever the grouping). Sorting on the hash first spares
/// comparing pseudonyms, which is most of the cost of sorting on them.
pub(crate) fn children_of(signals: &[(String, Signal)]) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = signals
        .iter()
        .enumerate()
        .map(|(i, (_, s))| {
            let mut h = DefaultHasher::new();
            s.pupil_pseudonym.hash(&mut h);
            (h.finish(), i)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| {
                signals[a.1]
                    .1
                    .pupil_pseudonym
                    .cmp(&signals[b.1].1.pupil_pseudonym)
            })
            .then(a.1.cmp(&b.1))
    });
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Whether the signals at `a` and `b` are about the same child.
pub(crate) fn same_child(signals: &[(String, Signal)], a: usize, b: usize) -> bool {
    signals[a].1.pupil_pseudonym == signals[b].1.pupil_pseudonym
}

/// The rows a report under `rule` has, in schema order.
fn rule_rows(rule: &Rule) -> Vec<Row> {
    Row::ALL
        .into_iter()
        .filter(|r| *r != Row::AvVoMboTransition || rule.names_mbo_intake_apart())
        .collect()
}

/// Which rows of the schema a category feeds; one winner per family per child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    NotAttending,
    V5a,
    V5b,
    V5c,
    Sick,
}

fn family(c: Category) -> Option<Family> {
    match c {
        Category::Lrv | Category::Av => Some(Family::NotAttending),
        Category::Vrijstelling5a => Some(Family::V5a),
        Category::Vrijstelling5b => Some(Family::V5b),
        Category::Vrijstelling5c => Some(Family::V5c),
        Category::LangdurigZiek => Some(Family::Sick),
        Category::Schorsing | Category::Verwijdering | Category::Verzuim => None,
    }
}

const FAMILIES: [Family; 5] = [
    Family::NotAttending,
    Family::V5a,
    Family::V5b,
    Family::V5c,
    Family::Sick,
];

/// Whether one signal, on its own, counts at `at` under `rule`.
pub(crate) fn counts(s: &Signal, at: NaiveDate, rule: &Rule, rules: &CountingRules) -> bool {
    if !is_active(s, at) || !rules.compulsory_age().contains(age_at(s, at)) {
        return false;
    }
    let cal = rules.calendar();
    match s.category {
        Category::Lrv => rule.lrv_after.reached(cal, s.absent_since, at),
        Category::Av => {
            rule.av_after.reached(cal, s.absent_since, at)
                && !rule.av_exclude.iter().any(|f| f.on(s))
        }
        Category::Vrijstelling5a | Category::Vrijstelling5b | Category::Vrijstelling5c => {
            s.exemption_end.is_none_or(|end| at <= end)
        }
        Category::LangdurigZiek => rule.sick_after.reached(cal, s.absent_since, at),
        Category::Schorsing | Category::Verwijdering | Category::Verzuim => false,
    }
}

/// Whether an offer on one of the child's active clock signals stops its clock at `at`.
fn offered(sigs: &[&Signal], at: NaiveDate, rules: &CountingRules) -> bool {
    sigs.iter().any(|s| {
        is_active(s, at)
            && rules.clock().categories.contains(&s.category)
            && offer_stops_clock(s, at)
    })
}

/// The signal that speaks for the child when its signals disagree (see the module docs).
fn winner<'a>(candidates: impl Iterator<Item = &'a Signal>) -> Option<&'a Signal> {
    candidates.min_by_key(|s| {
        (
            s.absent_since,
            Reverse(s.updated_at),
            s.category,
            s.sector,
            &s.residence_municipality,
            &s.school,
            &s.source_record_id,
        )
    })
}

/// The rows one child counts in at `at`, each with its winning signal, added to `out`.
fn child_rows<'a>(
    sigs: &[&'a Signal],
    at: NaiveDate,
    rule: &Rule,
    rules: &CountingRules,
    out: &mut Vec<(Row, &'a Signal)>,
) {
    let mut exempt = false;
    for fam in FAMILIES.into_iter().rev() {
        let candidates = sigs
            .iter()
            .copied()
            .filter(|s| family(s.category) == Some(fam) && counts(s, at, rule, rules));
        let Some(w) = winner(candidates) else {
            continue;
        };
        exempt |= matches!(fam, Family::V5a | Family::V5b | Family::V5c);
        if fam == Family::NotAttending && rule.av_not_if_exempt && exempt {
            let lrv = sigs
                .iter()
                .copied()
                .filter(|s| s.category == Category::Lrv && counts(s, at, rule, rules));
            let Some(w) = winner(lrv) else { continue };
            not_attending(w, at, rule, rules, sigs, out);
            continue;
        }
        if fam == Family::NotAttending {
            not_attending(w, at, rule, rules, sigs, out);
            continue;
        }
        out.extend(rows_of(fam, w, at, rule, rules).iter().map(|&r| (r, w)));
    }
}

/// The AV/LRV rows of a child, with "waarvan zonder aanbod" when no offer stops its clock.
fn not_attending<'a>(
    w: &'a Signal,
    at: NaiveDate,
    rule: &Rule,
    rules: &CountingRules,
    sigs: &[&'a Signal],
    out: &mut Vec<(Row, &'a Signal)>,
) {
    out.extend(
        rows_of(Family::NotAttending, w, at, rule, rules)
            .iter()
            .map(|&r| (r, w)),
    );
    if !offered(sigs, at, rules) {
        out.push((Row::WithoutOffer, w));
    }
}

/// The sector group a child counts in: AV by age at the date (Groningen, `002`:1409), every
/// other row by the sector of the (last) school; a child without one counts by age too.
fn group_of(w: &Signal, at: NaiveDate, rules: &CountingRules) -> SectorGroup {
    match w.sector {
        Some(sector) if w.category != Category::Av => rules.sector_group(sector),
        _ if age_at(w, at) < rules.av_po_under_age() => SectorGroup::Po,
        _ => SectorGroup::Vo,
    }
}

fn rows_of(
    fam: Family,
    w: &Signal,
    at: NaiveDate,
    rule: &Rule,
    rules: &CountingRules,
) -> &'static [Row] {
    let group = group_of(w, at, rules);
    match (fam, w.category, group) {
        (Family::NotAttending, Category::Lrv, SectorGroup::Po) => {
            &[Row::TotalNotAttending, Row::LrvPo]
        }
        (Family::NotAttending, Category::Lrv, SectorGroup::Vo) => {
            &[Row::TotalNotAttending, Row::LrvVo]
        }
        (Family::NotAttending, _, SectorGroup::Po) => &[Row::TotalNotAttending, Row::AvPo],
        (Family::NotAttending, _, SectorGroup::Vo) if mbo_apart(w, rule) => {
            &[Row::TotalNotAttending, Row::AvVo, Row::AvVoMboTransition]
        }
        (Family::NotAttending, _, SectorGroup::Vo) => &[Row::TotalNotAttending, Row::AvVo],
        (Family::V5a, _, _) if exemption_term(w) == ExemptionTerm::Permanent => {
            &[Row::Vrijstelling5aPermanent]
        }
        (Family::V5a, _, _) => &[Row::Vrijstelling5aTemporary],
        (Family::V5b, _, _) => &[Row::Vrijstelling5b],
        (Family::V5c, _, _) => &[Row::Vrijstelling5c],
        (Family::Sick, _, _) => &[Row::LangdurigZiek],
    }
}

fn mbo_apart(w: &Signal, rule: &Rule) -> bool {
    rule.names_mbo_intake_apart() && Flag::AwaitingMboIntake.on(w)
}

/// The term of an exemption: as given; else temporary when it has an end date, else permanent.
pub(crate) fn exemption_term(s: &Signal) -> ExemptionTerm {
    match (s.exemption_term, s.exemption_end) {
        (Some(t), _) => t,
        (None, Some(_)) => ExemptionTerm::Temporary,
        (None, None) => ExemptionTerm::Permanent,
    }
}

/// The scopes of a report: region, municipalities, SWVs, no-swv.
struct Scopes {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Scopes {
    fn new(signals: &[(String, Signal)], rules: &CountingRules) -> Self {
        let mut seen: HashSet<&str> = rules.denominators().keys().map(String::as_str).collect();
        seen.extend(
            signals
                .iter()
                .map(|(_, s)| s.residence_municipality.as_str()),
        );
        let mut municipalities: Vec<&str> = seen.into_iter().collect();
        municipalities.sort_unstable();
        let names: Vec<String> = std::iter::once(REGION)
            .chain(municipalities)
            .chain(rules.swv_names().iter().map(String::as_str))
            .chain(std::iter::once(NO_SWV))
            .map(str::to_string)
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Scopes { names, index }
    }

    /// Region, the winner's municipality, and the winner's SWV (or no-swv).
    fn of(&self, w: &Signal, rules: &CountingRules) -> [usize; 3] {
        let municipality = self
            .index
            .get(w.residence_municipality.as_str())
            .copied()
            .unwrap_or(0);
        let swv = w
            .school
            .as_ref()
            .and_then(|s| rules.swv_of_school(s))
            .unwrap_or(NO_SWV);
        let swv = self
            .index
            .get(swv)
            .or_else(|| self.index.get(NO_SWV))
            .copied()
            .unwrap_or(0);
        [0, municipality, swv]
    }
}

/// Dense counts: date x scope x row x column.
struct Grid {
    scopes: usize,
    counts: Vec<u64>,
}

impl Grid {
    fn new(dates: usize, scopes: usize) -> Self {
        Grid {
            scopes,
            counts: vec![0; dates * scopes * Row::ALL.len() * Column::ALL.len()],
        }
    }

    fn slot(&self, date: usize, scope: usize, row: Row, column: Column) -> usize {
        ((date * self.scopes + scope) * Row::ALL.len() + row.index()) * Column::ALL.len()
            + column.index()
    }

    fn add(&mut self, date: usize, scope: usize, row: Row, column: Column) {
        let i = self.slot(date, scope, row, column);
        if let Some(n) = self.counts.get_mut(i) {
            *n += 1;
        }
    }

    fn get(&self, date: usize, scope: usize, row: Row, column: Column) -> u64 {
        self.counts
            .get(self.slot(date, scope, row, column))
            .copied()
            .unwrap_or(0)
    }
}

fn build_cells(
    grid: &Grid,
    dates: &[NaiveDate],
    scopes: &Scopes,
    rows: &[Row],
    rules: &CountingRules,
    covered: &[String],
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (di, &date) in dates.iter().enumerate() {
        for (si, scope) in scopes.names.iter().enumerate() {
            for &row in rows {
                if row == Row::ResidentPupils {
                    cells.extend(denominator(rules, scope, covered).map(|count| Cell {
                        date,
                        scope: scope.clone(),
                        row,
                        column: Column::Total,
                        count,
                    }));
                    continue;
                }
                for column in Column::ALL {
                    cells.push(Cell {
                        date,
                        scope: scope.clone(),
                        row,
                        column,
                        count: grid.get(di, si, row, column),
                    });
                }
            }
        }
    }
    cells
}

/// Resident pupils of compulsory age in a scope: a covered municipality's own, the region's the
/// sum of exactly the covered municipalities; SWV scopes and uncovered municipalities have none
/// (an SWV is school-based, not residence-based; no rate over pupils the data does not cover).
fn denominator(rules: &CountingRules, scope: &str, covered: &[String]) -> Option<u64> {
    let d = rules.denominators();
    if scope == REGION {
        return (!covered.is_empty()).then(|| covered.iter().filter_map(|m| d.get(m)).sum());
    }
    covered
        .iter()
        .any(|m| m == scope)
        .then(|| d.get(scope).copied())
        .flatten()
}
