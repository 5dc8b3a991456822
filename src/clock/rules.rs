//! Counting rules as data: parses and checks `policies/counting.toml` (named AV/LRV
//! definitions, the clock, reference dates, holidays, denominators, the school-to-SWV map).
//! Never evaluates a signal itself beyond `Period::reached`; every error names file, line and fix.
//! Invariant: a `CountingRules` value exists only if the whole file passed every check.

use super::calendar::{Holiday, SchoolCalendar};
use super::closed_day;
use super::targets::{self, Indicator, RawIndicator};
use crate::ids::{Brin, MunicipalityCode};
use crate::signal::{Category, Sector, Signal};
use crate::toml_check::{self, FileError, Findings};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// One problem in a rules file: the checked-TOML framework's error (file, line, column, fix).
pub type RulesError = FileError;

/// Every problem found in one rules file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RulesErrors(pub Vec<RulesError>);

impl fmt::Display for RulesErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the counting rules:",
            if n == 1 { "" } else { "s" }
        )?;
        toml_check::write_lines(f, &self.0, "  ")
    }
}

/// A length of absence, counted from `absent_since` like age (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Weeks(u32),
    Months(u32),
    SchoolWeeks(u32),
}

impl Period {
    /// Whether a child absent since `since` has been absent this long at `at`.
    pub fn reached(self, cal: &SchoolCalendar, since: NaiveDate, at: NaiveDate) -> bool {
        let days = (at - since).num_days();
        match self {
            Period::Days(n) => days >= i64::from(n),
            Period::Weeks(n) => days >= 7 * i64::from(n),
            Period::Months(n) => super::months_reached(since, n, at),
            Period::SchoolWeeks(n) => cal.school_days(since, at) >= 5 * i64::from(n),
        }
    }
}

/// A fact on a signal that a rule can leave out or name apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Exemption5cRequested,
    AddressUnderInvestigation,
    AwaitingMboIntake,
}

impl Flag {
    const ALL: [Flag; 3] = [
        Flag::Exemption5cRequested,
        Flag::AddressUnderInvestigation,
        Flag::AwaitingMboIntake,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Flag::Exemption5cRequested => "exemption_5c_requested",
            Flag::AddressUnderInvestigation => "address_under_investigation",
            Flag::AwaitingMboIntake => "awaiting_mbo_intake",
        }
    }

    pub fn on(self, s: &Signal) -> bool {
        match self {
            Flag::Exemption5cRequested => s.exemption_5c_requested,
            Flag::AddressUnderInvestigation => s.address_under_investigation,
            Flag::AwaitingMboIntake => s.awaiting_mbo_intake,
        }
    }
}

/// One named counting definition (`duo`, `g4`, `groningen`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub description: String,
    /// AV counts once the child has been out of school this long.
    pub av_after: Period,
    /// AV signals with any of these flags are registered but not counted.
    pub av_exclude: Vec<Flag>,
    /// AV signals with these flags count, and are also shown in their own "of which" row.
    pub av_name_apart: Vec<Flag>,
    /// LRV counts once the child has been absent this long.
    pub lrv_after: Period,
    /// LANGDURIG_ZIEK counts once the child has been sick this long.
    pub sick_after: Period,
    /// AV does not count for a child that has an exemption (5a/5b/5c) counted at the same date
    /// (the Groningen evaluation: "geen schoolinschrijving of een vrijstelling", `002`:1408).
    pub av_not_if_exempt: bool,
}

impl Rule {
    /// Whether AV signals awaiting the MBO intake get their own row.
    pub fn names_mbo_intake_apart(&self) -> bool {
        self.av_name_apart.contains(&Flag::AwaitingMboIntake)
    }
}

/// The escalation step the region takes at each band, per sector group: four week bands, then
/// over three months ("welke route wanneer").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub po: [String; 5],
    pub vo: [String; 5],
}

/// The clock behind `due`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockRules {
    /// Four ascending thresholds in weeks (4, 8, 10, 12).
    pub due_weeks: [u32; 4],
    /// The step per band and sector group.
    pub escalation: Escalation,
    /// "Three months", in calendar months from `absent_since`.
    pub three_months: u32,
    /// Categories on the clock; an offer on one of them stops the child's clock.
    pub categories: Vec<Category>,
    /// The clock runs for children up to and including this age.
    pub max_age: u32,
}

/// Who is of compulsory school age: leerplichtig from `from`, kwalificatieplichtig until the
/// year before `under` (a startkwalificatie is not known to pactgate). Ages in whole years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompulsoryAge {
    pub from: u32,
    pub under: u32,
}

impl CompulsoryAge {
    pub fn contains(self, age: u32) -> bool {
        (self.from..self.under).contains(&age)
    }
}

/// The two columns of sectors in the G4 schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectorGroup {
    Po,
    Vo,
}

/// The checked counting rules.
#[derive(Debug, Clone)]
pub struct CountingRules {
    rules: BTreeMap<String, Rule>,
    clock: ClockRules,
    reference_days: Vec<(u32, u32)>,
    calendar: SchoolCalendar,
    retention_days: u32,
    min_absent_since: NaiveDate,
    suppression_threshold: u64,
    denominators: BTreeMap<String, u64>,
    swv_by_brin: HashMap<Brin, String>,
    swv_names: Vec<String>,
    sector_groups: HashMap<Sector, SectorGroup>,
    compulsory_age: CompulsoryAge,
    av_po_under_age: u32,
    indicators: Vec<Indicator>,
}

impl CountingRules {
    /// Parses and checks rules text; `file_name` only labels the errors.
    pub fn parse(text: &str, file_name: &str) -> Result<CountingRules, RulesErrors> {
        let raw: RawFile = toml_check::parse(text, file_name).map_err(|e| RulesErrors(vec![e]))?;
        let mut check = Checker {
            findings: Findings::new(text, file_name),
        };
        let rules = check.build(raw);
        let (rules, _) = check.findings.finish(rules).map_err(RulesErrors)?;
        // `build` gives up (None) only after recording why.
        rules.ok_or_else(|| {
            RulesErrors(vec![FileError::whole_file(
                file_name,
                "the counting rules are incomplete",
                "",
            )])
        })
    }

    /// Reads and checks a rules file.
    pub fn load(path: &Path) -> Result<CountingRules, RulesErrors> {
        let text =
            toml_check::read(path, "the counting rules").map_err(|e| RulesErrors(vec![e]))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.get(name)
    }

    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.keys().map(String::as_str).collect()
    }

    pub fn suppression_threshold(&self) -> u64 {
        self.suppression_threshold
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// The earliest `absent_since` a node accepts: older dates are typing errors or defaults of
    /// a partner's system, never a child's first day absent.
    pub fn min_absent_since(&self) -> NaiveDate {
        self.min_absent_since
    }

    /// Resident pupils of compulsory age per municipality (CBS code).
    pub fn denominators(&self) -> &BTreeMap<String, u64> {
        &self.denominators
    }

    /// The SWV (or MBO group) of a school, by the first four characters (the BRIN).
    pub fn swv_of_school(&self, school: &str) -> Option<&str> {
        let brin = school.get(..4)?;
        self.swv_by_brin.get(brin).map(String::as_str)
    }

    /// The SWV names, sorted.
    pub fn swv_names(&self) -> &[String] {
        &self.swv_names
    }

    /// The reference dates of the school year that starts in August of `school_year_start_year`.
    pub fn reference_dates(&self, school_year_start_year: i32) -> Vec<NaiveDate> {
        let mut dates: Vec<NaiveDate> = self
            .reference_days
            .iter()
            .filter_map(|&(m, d)| {
                let year = if m >= 8 {
                    school_year_start_year
                } else {
                    school_year_start_year + 1
                };
                NaiveDate::from_ymd_opt(year, m, d)
            })
            .collect();
        dates.sort();
        dates
    }

    pub fn calendar(&self) -> &SchoolCalendar {
        &self.calendar
    }

    pub fn clock(&self) -> &ClockRules {
        &self.clock
    }

    /// The pact's indicators (baselines and targets), in file order.
    pub fn indicators(&self) -> &[Indicator] {
        &self.indicators
    }

    /// Who counts in the report: only children of compulsory school age at the date.
    pub fn compulsory_age(&self) -> CompulsoryAge {
        self.compulsory_age
    }

    /// AV is split by age: under this age at the date AV PO, from it AV VO.
    pub fn av_po_under_age(&self) -> u32 {
        self.av_po_under_age
    }

    pub fn sector_group(&self, sector: Sector) -> SectorGroup {
        self.sector_groups
            .get(&sector)
            .copied()
            .unwrap_or(SectorGroup::Vo)
    }

    /// Whether a closed signal is past the retention period at `today` and must be purged.
    pub fn retention_expired(&self, s: &Signal, today: NaiveDate) -> bool {
        closed_day(s).is_some_and(|c| (today - c).num_days() > i64::from(self.retention_days))
    }
}

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    counting: RawCounting,
    clock: RawClock,
    sector_groups: Spanned<BTreeMap<String, Vec<Spanned<String>>>>,
    rules: Spanned<BTreeMap<String, Spanned<RawRule>>>,
    holidays: Vec<Spanned<RawHoliday>>,
    denominators: BTreeMap<String, Spanned<u64>>,
    swv: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    indicator: Vec<Spanned<RawIndicator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounting {
    suppression_threshold: Spanned<u64>,
    retention_days: Spanned<u32>,
    #[serde(default)]
    min_absent_since: Option<Spanned<String>>,
    reference_dates: Spanned<Vec<Spanned<String>>>,
    compulsory_age: Spanned<RawAge>,
    av_po_under_age: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAge {
    from: u32,
    under: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClock {
    due_weeks: Spanned<Vec<u32>>,
    three_months: Spanned<u32>,
    categories: Vec<Spanned<String>>,
    max_age: u32,
    escalation: Spanned<RawEscalation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    po: Vec<String>,
    vo: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    description: String,
    av_after: Spanned<RawPeriod>,
    #[serde(default)]
    av_exclude: Vec<Spanned<String>>,
    #[serde(default)]
    av_name_apart: Vec<Spanned<String>>,
    lrv_after: Spanned<RawPeriod>,
    sick_after: Spanned<RawPeriod>,
    #[serde(default)]
    av_not_if_exempt: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeriod {
    days: Option<u32>,
    weeks: Option<u32>,
    months: Option<u32>,
    school_weeks: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    school_year: Spanned<String>,
    name: String,
    from: Spanned<toml::value::Datetime>,
    to: Spanned<toml::value::Datetime>,
}

// ---- checks ----

struct Checker<'a> {
    findings: Findings<'a>,
}

impl Checker<'_> {
    fn fail(&mut self, span: Range<usize>, what: impl Into<String>, fix: impl Into<String>) {
        self.findings.error(span, what, fix);
    }

    fn build(&mut self, raw: RawFile) -> Option<CountingRules> {
        let threshold = self.threshold(&raw.counting.suppression_threshold);
        let reference_days = self.reference_days(&raw.counting.reference_dates);
        let clock = self.clock(&raw.clock);
        let sector_groups = self.sector_groups(&raw.sector_groups);
        let rules = self.rules(&raw.rules);
        let calendar = self.calendar(&raw.holidays);
        let denominators = self.denominators(&raw.denominators);
        let (swv_by_brin, swv_names) = self.swv(&raw.swv);
        let compulsory_age = self.compulsory_age(&raw.counting.compulsory_age);
        let av_po_under_age = *raw.counting.av_po_under_age.get_ref();
        if !compulsory_age.contains(av_po_under_age) {
            self.fail(
                raw.counting.av_po_under_age.span(),
                "av_po_under_age lies outside the compulsory age",
                "write the age at which VO starts, e.g. 12",
            );
        }
        let (indicators, problems) = targets::check(&raw.indicator, |name| {
            raw.rules.get_ref().contains_key(name)
        });
        for p in problems {
            self.fail(p.span, p.what, p.fix);
        }
        Some(CountingRules {
            indicators,
            rules,
            clock: clock?,
            reference_days,
            calendar,
            retention_days: *raw.counting.retention_days.get_ref(),
            min_absent_since: self.min_absent_since(raw.counting.min_absent_since.as_ref()),
            suppression_threshold: threshold,
            denominators,
            swv_by_brin,
            swv_names,
            sector_groups,
            compulsory_age,
            av_po_under_age,
        })
    }

    fn min_absent_since(&mut self, day: Option<&Spanned<String>>) -> NaiveDate {
        use chrono::Datelike as _;
        let Some(day) = day else {
            return crate::signal::DEFAULT_MIN_ABSENT_SINCE;
        };
        match NaiveDate::parse_from_str(day.get_ref(), "%Y-%m-%d") {
            Ok(date) if date.year() >= 1990 => date,
            _ => {
                self.fail(
                    day.span(),
                    format!(
                        "min_absent_since \"{}\" is not a date from 1990 on",
                        day.get_ref()
                    ),
                    "write \"YYYY-MM-DD\", e.g. \"2000-01-01\"",
                );
                crate::signal::DEFAULT_MIN_ABSENT_SINCE
            }
        }
    }

    fn compulsory_age(&mut self, a: &Spanned<RawAge>) -> CompulsoryAge {
        let age = CompulsoryAge {
            from: a.get_ref().from,
            under: a.get_ref().under,
        };
        if age.from >= age.under {
            self.fail(
                a.span(),
                "compulsory_age counts nobody: from is not below under",
                "write { from = 5, under = 18 }",
            );
        }
        age
    }

    fn threshold(&mut self, t: &Spanned<u64>) -> u64 {
        if *t.get_ref() < 2 {
            self.fail(
                t.span(),
                "suppression_threshold below 2 suppresses nothing",
                "use 5 (the default) or more",
            );
        }
        *t.get_ref()
    }

    fn reference_days(&mut self, dates: &Spanned<Vec<Spanned<String>>>) -> Vec<(u32, u32)> {
        if dates.get_ref().is_empty() {
            self.fail(
                dates.span(),
                "no reference dates",
                "list them as \"MM-DD\", e.g. [\"11-01\", \"02-01\", \"06-01\"]",
            );
        }
        let mut out = Vec::new();
        for d in dates.get_ref() {
            match parse_month_day(d.get_ref()) {
                Some(md) => out.push(md),
                None => self.fail(
                    d.span(),
                    format!("\"{}\" is not a month and day", d.get_ref()),
                    "write \"MM-DD\" with a day every year has (not 02-29)",
                ),
            }
        }
        out
    }

    fn clock(&mut self, c: &RawClock) -> Option<ClockRules> {
        let weeks = c.due_weeks.get_ref();
        let due_weeks: Option<[u32; 4]> = weeks.as_slice().try_into().ok();
        let ascending = due_weeks.is_some_and(|w| w[0] > 0 && w.windows(2).all(|p| p[0] < p[1]));
        if !ascending {
            self.fail(
                c.due_weeks.span(),
                "due_weeks must be four ascending week counts",
                "write e.g. [4, 8, 10, 12]",
            );
        }
        let steps = |v: &[String]| -> Option<[String; 5]> { v.to_vec().try_into().ok() };
        let e = c.escalation.get_ref();
        let escalation = steps(&e.po).zip(steps(&e.vo));
        if escalation.is_none() {
            self.fail(
                c.escalation.span(),
                "escalation needs five steps for po and for vo: one per due_weeks band, then over three months",
                "list five texts in po = [...] and vo = [...]",
            );
        }
        let months = *c.three_months.get_ref();
        // The shortest span of `months` calendar months (Feb-Apr in a common year).
        let shortest = i64::from(months) * 28 + i64::from(months.min(11)) * 2;
        if months == 0 || due_weeks.is_some_and(|w| i64::from(w[3]) * 7 > shortest) {
            self.fail(
                c.three_months.span(),
                "three_months must be at least 1 and end after the last due_weeks threshold",
                "write 3",
            );
        }
        let categories = self.categories(&c.categories);
        Some(ClockRules {
            due_weeks: due_weeks.filter(|_| ascending)?,
            escalation: escalation.map(|(po, vo)| Escalation { po, vo })?,
            three_months: months,
            categories,
            max_age: c.max_age,
        })
    }

    fn categories(&mut self, codes: &[Spanned<String>]) -> Vec<Category> {
        let mut out = Vec::new();
        for code in codes {
            match Category::ALL.iter().find(|c| c.code() == code.get_ref()) {
                Some(c) => out.push(*c),
                None => self.fail(
                    code.span(),
                    format!("unknown category \"{}\"", code.get_ref()),
                    format!(
                        "use one of {}",
                        join(Category::ALL.iter().map(|c| c.code()))
                    ),
                ),
            }
        }
        out
    }

    fn sector_groups(
        &mut self,
        groups: &Spanned<BTreeMap<String, Vec<Spanned<String>>>>,
    ) -> HashMap<Sector, SectorGroup> {
        let mut out = HashMap::new();
        for (name, sectors) in groups.get_ref() {
            let group = match name.as_str() {
                "PO" => SectorGroup::Po,
                "VO" => SectorGroup::Vo,
                _ => {
                    self.fail(
                        groups.span(),
                        format!("unknown sector group \"{name}\""),
                        "use the groups PO and VO",
                    );
                    continue;
                }
            };
            for s in sectors {
                match Sector::ALL.iter().find(|x| x.code() == s.get_ref()) {
                    Some(x) if out.insert(*x, group).is_some() => self.fail(
                        s.span(),
                        format!("sector {} is in two groups", x.code()),
                        "keep it in one",
                    ),
                    Some(_) => {}
                    None => self.fail(
                        s.span(),
                        format!("unknown sector \"{}\"", s.get_ref()),
                        format!("use one of {}", join(Sector::ALL.iter().map(|x| x.code()))),
                    ),
                }
            }
        }
        for sector in Sector::ALL.iter().filter(|s| !out.contains_key(s)) {
            self.fail(
                groups.span(),
                format!("sector {} is in no group", sector.code()),
                "add it to PO or VO",
            );
        }
        out
    }

    fn rules(
        &mut self,
        rules: &Spanned<BTreeMap<String, Spanned<RawRule>>>,
    ) -> BTreeMap<String, Rule> {
        if rules.get_ref().is_empty() {
            self.fail(rules.span(), "no counting rules", "add at least [rules.g4]");
        }
        rules
            .get_ref()
            .iter()
            .filter_map(|(name, raw)| Some((name.clone(), self.rule(name, raw.get_ref())?)))
            .collect()
    }

    fn rule(&mut self, name: &str, raw: &RawRule) -> Option<Rule> {
        let av_after = self.period(&raw.av_after);
        let lrv_after = self.period(&raw.lrv_after);
        let sick_after = self.period(&raw.sick_after);
        let av_exclude = self.flags(&raw.av_exclude, &Flag::ALL);
        let av_name_apart = self.flags(&raw.av_name_apart, &[Flag::AwaitingMboIntake]);
        Some(Rule {
            name: name.to_string(),
            description: raw.description.clone(),
            av_after: av_after?,
            av_exclude,
            av_name_apart,
            lrv_after: lrv_after?,
            sick_after: sick_after?,
            av_not_if_exempt: raw.av_not_if_exempt,
        })
    }

    fn period(&mut self, p: &Spanned<RawPeriod>) -> Option<Period> {
        let r = p.get_ref();
        let set: Vec<Period> = [
            r.days.map(Period::Days),
            r.weeks.map(Period::Weeks),
            r.months.map(Period::Months),
            r.school_weeks.map(Period::SchoolWeeks),
        ]
        .into_iter()
        .flatten()
        .collect();
        if set.len() != 1 {
            self.fail(
                p.span(),
                "a period needs exactly one of days, weeks, months, school_weeks",
                "write e.g. { weeks = 4 }",
            );
            return None;
        }
        set.first().copied()
    }

    fn flags(&mut self, codes: &[Spanned<String>], allowed: &[Flag]) -> Vec<Flag> {
        let mut out = Vec::new();
        for code in codes {
            match allowed.iter().find(|f| f.code() == code.get_ref()) {
                Some(f) => out.push(*f),
                None => self.fail(
                    code.span(),
                    format!("\"{}\" cannot be used here", code.get_ref()),
                    format!("use one of {}", join(allowed.iter().map(|f| f.code()))),
                ),
            }
        }
        out
    }

    fn calendar(&mut self, holidays: &[Spanned<RawHoliday>]) -> SchoolCalendar {
        let mut out: Vec<Holiday> = holidays
            .iter()
            .filter_map(|h| self.holiday(h.get_ref()))
            .collect();
        out.sort_by_key(|h| h.from);
        for pair in out.windows(2) {
            if let [a, b] = pair {
                if b.from <= a.to {
                    let span = holidays
                        .iter()
                        .find(|h| h.get_ref().name == b.name)
                        .map_or(0..0, |h| h.span());
                    self.fail(
                        span,
                        format!(
                            "{} {} overlaps {} {}",
                            b.name, b.school_year, a.name, a.school_year
                        ),
                        "make the holidays disjoint",
                    );
                }
            }
        }
        SchoolCalendar::new(out)
    }

    fn holiday(&mut self, h: &RawHoliday) -> Option<Holiday> {
        let from = self.date(&h.from)?;
        let to = self.date(&h.to)?;
        if to < from {
            self.fail(
                h.to.span(),
                format!("{} ends before it starts", h.name),
                "swap from and to",
            );
            return None;
        }
        if !valid_school_year(h.school_year.get_ref(), from) {
            self.fail(
                h.school_year.span(),
                format!(
                    "{} starting {from} is not in school year {}",
                    h.name,
                    h.school_year.get_ref()
                ),
                "write the school year as \"YYYY-YYYY\" (August to July)",
            );
        }
        Some(Holiday {
            school_year: h.school_year.get_ref().clone(),
            name: h.name.clone(),
            from,
            to,
        })
    }

    fn date(&mut self, d: &Spanned<toml::value::Datetime>) -> Option<NaiveDate> {
        let date = d.get_ref().date.filter(|_| d.get_ref().time.is_none());
        let day = date.and_then(|x| {
            NaiveDate::from_ymd_opt(i32::from(x.year), u32::from(x.month), u32::from(x.day))
        });
        if day.is_none() {
            self.fail(
                d.span(),
                "not a plain date",
                "write a TOML date like 2025-10-18 (no quotes, no time)",
            );
        }
        day
    }

    fn denominators(&mut self, d: &BTreeMap<String, Spanned<u64>>) -> BTreeMap<String, u64> {
        for (code, n) in d {
            if !MunicipalityCode::is_valid(code) {
                self.fail(
                    n.span(),
                    format!("\"{code}\" is not a CBS municipality code"),
                    "write GM and four digits, e.g. GM0014",
                );
            }
            if *n.get_ref() == 0 {
                self.fail(
                    n.span(),
                    format!("{code} has no pupils"),
                    "give the number of resident pupils of compulsory age",
                );
            }
        }
        d.iter().map(|(k, v)| (k.clone(), *v.get_ref())).collect()
    }

    fn swv(
        &mut self,
        swv: &BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    ) -> (HashMap<Brin, String>, Vec<String>) {
        let mut by_brin = HashMap::new();
        for (name, brins) in swv {
            if MunicipalityCode::is_valid(name) || name == super::REGION || name == super::NO_SWV {
                self.fail(
                    brins.span(),
                    format!("\"{name}\" cannot name an SWV"),
                    "pick a name that is no CBS code, not \"region\" and not \"no-swv\"",
                );
            }
            for brin in brins.get_ref() {
                let code = brin.get_ref();
                let Ok(parsed) = code.parse::<Brin>() else {
                    self.fail(
                        brin.span(),
                        format!("\"{code}\" is not a BRIN"),
                        "write the BRIN's two digits and two capitals, e.g. 20XY, without the \
                         vestiging",
                    );
                    continue;
                };
                if let Some(other) = by_brin.insert(parsed, name.clone()) {
                    self.fail(
                        brin.span(),
                        format!("BRIN {code} is in {other} and {name}"),
                        "keep each school in one SWV",
                    );
                }
            }
        }
        (by_brin, swv.keys().cloned().collect())
    }
}

fn valid_school_year(year: &str, from: NaiveDate) -> bool {
    use chrono::Datelike;
    let Some((a, b)) = year.split_once('-') else {
        return false;
    };
    let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) else {
        return false;
    };
    let start = NaiveDate::from_ymd_opt(a, 7, 1);
    let end = NaiveDate::from_ymd_opt(b, 9, 30);
    b == a + 1
        && start.is_some_and(|s| from >= s)
        && end.is_some_and(|e| from <= e)
        && from.year() >= a
}

fn parse_month_day(text: &str) -> Option<(u32, u32)> {
    let (m, d) = text.split_once('-')?;
    let (m, d) = (m.parse::<u32>().ok()?, d.parse::<u32>().ok()?);
    // 2023 is a common year: 02-29 fails here, as it would in three years of four.
    NaiveDate::from_ymd_opt(2023, m, d).map(|_| (m, d))
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
