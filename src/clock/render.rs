//! Renders a report (suppressed or the node's own full view) as a text table, CSV, JSON and a
//! hand-written SVG chart. Formats only what it is given; never counts or suppresses.
//! Invariant: a suppressed cell renders as "x"/empty/null, and so does any rate derived from it;
//! a row the caller may not see renders as "niet beschikbaar", never as 0.

use super::report::{Column, Report, Row, REGION};
use super::suppress::{SuppressedCell, SuppressedReport};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing CSV: {0}")]
    CsvFinish(String),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How a row the caller may not see is shown.
pub const UNAVAILABLE: &str = "niet beschikbaar";

/// The derived row: not attending per 1,000 resident pupils (not a cell, never suppressed on
/// its own: hidden whenever the count it is derived from is).
pub const PER_1000: &str = "PER_1000";

type Key<'a> = (NaiveDate, &'a str, Row, Column);

struct Lookup<'a> {
    values: HashMap<Key<'a>, Option<u64>>,
}

impl<'a> Lookup<'a> {
    fn new(cells: &'a [SuppressedCell]) -> Self {
        let values = cells
            .iter()
            .map(|c| ((c.date, c.scope.as_str(), c.row, c.column), c.value))
            .collect();
        Lookup { values }
    }

    /// Outer None: no such cell; inner None: suppressed.
    fn get(
        &self,
        date: NaiveDate,
        scope: &'a str,
        row: Row,
        column: Column,
    ) -> Option<Option<u64>> {
        self.values.get(&(date, scope, row, column)).copied()
    }

    fn per_1000(&self, date: NaiveDate, scope: &'a str, column: Column) -> Option<Option<f64>> {
        let pupils = self.get(date, scope, Row::ResidentPupils, Column::Total)??;
        let count = self.get(date, scope, Row::TotalNotAttending, column)?;
        Some(
            count
                .filter(|_| pupils > 0)
                .map(|n| n as f64 * 1000.0 / pupils as f64),
        )
    }
}

impl Report {
    pub fn to_table(&self) -> String {
        self.unsuppressed().to_table()
    }
    pub fn to_csv(&self) -> Result<String, RenderError> {
        self.unsuppressed().to_csv()
    }
    pub fn to_json(&self) -> Result<String, RenderError> {
        self.unsuppressed().to_json()
    }
    pub fn to_svg(&self) -> String {
        self.unsuppressed().to_svg()
    }
}

const LABEL_WIDTH: usize = 42;
const VALUE_WIDTH: usize = 8;

impl SuppressedReport {
    /// A readable table per scope, the reference dates side by side.
    pub fn to_table(&self) -> String {
        let look = Lookup::new(&self.cells);
        let mut out = format!(
            "Telregel: {}   (x = onderdrukt: kleiner dan de drempel, of een complement)\n",
            self.rule
        );
        out.push_str(&self.denominator_note());
        out.push('\n');
        for scope in &self.scopes {
            out.push_str(&self.table_scope(&look, scope));
        }
        out.push_str(&self.indicator_table());
        out.push_str(&self.year_table());
        out
    }

    /// Counts over the school year.
    fn year_table(&self) -> String {
        let Some(y) = &self.year else {
            return String::new();
        };
        let mut out = format!(
            "\n== Aantallen over het schooljaar {} t/m {} (regio, elk kind één keer) ==\n",
            y.start.format("%d-%m-%Y"),
            y.end.format("%d-%m-%Y")
        );
        for (row, n) in &y.counts {
            let _ = writeln!(out, "{:LABEL_WIDTH$} | {}", row.label(), count_text(*n));
        }
        out
    }

    /// Which municipalities the per-1,000 rates are over.
    fn denominator_note(&self) -> String {
        if self.covered.is_empty() {
            return "Per 1.000 leerlingen: niet beschikbaar (de gegevens dekken geen woongemeente)"
                .to_string();
        }
        format!(
            "Per 1.000 leerlingen: noemer = woonachtige leerplichtigen van {}",
            self.covered.join(", ")
        )
    }

    /// The pact's indicators: baseline, figure per date, change and target.
    fn indicator_table(&self) -> String {
        let lines = self.indicator_lines(&self.indicators);
        if lines.is_empty() {
            return String::new();
        }
        let mut out = "\n== Pact-indicatoren (regio) ==\n".to_string();
        for l in &lines {
            let i = &l.indicator;
            let _ = writeln!(out, "{} {}", i.name, i.seed);
            let _ = writeln!(out, "  ijkpunt: {}", i.baseline_text());
            for (k, (date, figure)) in l.figures.iter().enumerate() {
                let change = l.changes.get(k).copied().flatten();
                let target = l.targets.get(k).copied().flatten();
                let _ = writeln!(
                    out,
                    "  {}: {:>6}   verandering {:>8}   doel {:>8}",
                    date.format("%d-%m-%Y"),
                    figure.map_or_else(|| "x".to_string(), |n| n.to_string()),
                    change.map_or_else(|| "onbekend".to_string(), |c| format!("{c:+.1}%")),
                    target.map_or_else(|| "onbekend".to_string(), |t| format!("{t:.0}")),
                );
            }
            let _ = writeln!(out, "  doel: {}", i.target_text());
        }
        out
    }

    fn table_scope(&self, look: &Lookup<'_>, scope: &str) -> String {
        let group = Column::ALL.len() * VALUE_WIDTH;
        let mut out = format!("\n== {scope} ==\n{:LABEL_WIDTH$}", "");
        for date in &self.dates {
            let _ = write!(out, " |{:>group$}", date.format("%d-%m-%Y").to_string());
        }
        let _ = write!(out, "\n{:LABEL_WIDTH$}", "");
        for _ in &self.dates {
            out.push_str(" |");
            for c in Column::ALL {
                let _ = write!(out, "{:>VALUE_WIDTH$}", c.label());
            }
        }
        out.push('\n');
        for &row in &self.unavailable {
            let _ = writeln!(out, "{:LABEL_WIDTH$} | {UNAVAILABLE}", row.label());
        }
        for &row in &self.rows {
            out.push_str(&self.table_line(row.label(), |date, col| {
                look.get(date, scope, row, col).map(count_text)
            }));
            if row == Row::ResidentPupils {
                out.push_str(
                    &self.table_line("Niet-schoolgaand per 1.000 leerlingen", |date, col| {
                        look.per_1000(date, scope, col).map(rate_text)
                    }),
                );
            }
        }
        out
    }

    fn table_line(
        &self,
        label: &str,
        value: impl Fn(NaiveDate, Column) -> Option<String>,
    ) -> String {
        let mut line = format!("{label:LABEL_WIDTH$}");
        for &date in &self.dates {
            line.push_str(" |");
            for c in Column::ALL {
                let _ = write!(line, "{:>VALUE_WIDTH$}", value(date, c).unwrap_or_default());
            }
        }
        line.push('\n');
        line
    }

    /// CSV: `rule,date,scope,row,column,value,note`; empty value = suppressed (note
    /// "onderdrukt") or not available (note "niet beschikbaar"); PER_1000 rows derived, with
    /// the denominator's municipalities in the note; the indicators as rows `INDICATOR:<id>`
    /// with columns BASELINE, VALUE, CHANGE_PERCENT and TARGET.
    pub fn to_csv(&self) -> Result<String, RenderError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["rule", "date", "scope", "row", "column", "value", "note"])?;
        for line in self.flat() {
            let date = line.date.to_string();
            let note = match (&line.value, line.row) {
                (Value::Count(None), _) => "onderdrukt".to_string(),
                (_, PER_1000) => format!("noemer: {}", self.covered.join(" ")),
                _ => String::new(),
            };
            w.write_record([
                self.rule.as_str(),
                &date,
                line.scope,
                line.row,
                line.column,
                &line.value.text(),
                &note,
            ])?;
        }
        for &date in &self.dates {
            for row in &self.unavailable {
                let date = date.to_string();
                w.write_record([
                    self.rule.as_str(),
                    &date,
                    REGION,
                    row.code(),
                    Column::Total.code(),
                    "",
                    UNAVAILABLE,
                ])?;
            }
        }
        if let Some(y) = &self.year {
            // The date column holds the school year's first day; the column says it is a year.
            let start = y.start.to_string();
            for (row, n) in &y.counts {
                w.write_record([
                    self.rule.as_str(),
                    &start,
                    REGION,
                    row.code(),
                    "SCHOOL_YEAR",
                    &n.map(|v| v.to_string()).unwrap_or_default(),
                    if n.is_none() { "onderdrukt" } else { "" },
                ])?;
            }
        }
        for l in self.indicator_lines(&self.indicators) {
            let row = format!("INDICATOR:{}", l.indicator.id);
            let seed = &l.indicator.seed;
            for (k, (date, figure)) in l.figures.iter().enumerate() {
                let date = date.to_string();
                let values = [
                    (
                        "BASELINE",
                        l.indicator.baseline.map(|b| b.to_string()),
                        l.indicator.baseline_text(),
                    ),
                    ("VALUE", figure.map(|f| f.to_string()), String::new()),
                    (
                        "CHANGE_PERCENT",
                        l.changes
                            .get(k)
                            .copied()
                            .flatten()
                            .map(|c| format!("{c:.1}")),
                        String::new(),
                    ),
                    (
                        "TARGET",
                        l.targets
                            .get(k)
                            .copied()
                            .flatten()
                            .map(|t| format!("{t:.0}")),
                        format!("{} {seed}", l.indicator.target_text()),
                    ),
                ];
                for (column, value, note) in values {
                    w.write_record([
                        self.rule.as_str(),
                        &date,
                        REGION,
                        &row,
                        column,
                        &value.unwrap_or_default(),
                        &note,
                    ])?;
                }
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| RenderError::CsvFinish(e.error().to_string()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// JSON: `{ rule, dates, scopes, cells: [{date, scope, row, column, value}],
    /// unavailable_rows, denominator_municipalities, indicators }`, null = suppressed.
    pub fn to_json(&self) -> Result<String, RenderError> {
        #[derive(Serialize)]
        struct Doc<'a> {
            rule: &'a str,
            dates: &'a [NaiveDate],
            scopes: &'a [String],
            cells: Vec<Flat<'a>>,
            unavailable_rows: Vec<&'static str>,
            denominator_municipalities: &'a [String],
            indicators: Vec<super::IndicatorLine>,
            school_year: Option<&'a super::report::YearSection>,
        }
        let doc = Doc {
            rule: &self.rule,
            dates: &self.dates,
            scopes: &self.scopes,
            cells: self.flat(),
            unavailable_rows: self.unavailable.iter().map(|r| r.code()).collect(),
            denominator_municipalities: &self.covered,
            indicators: self.indicator_lines(&self.indicators),
            school_year: self.year.as_ref(),
        };
        Ok(serde_json::to_string_pretty(&doc)?)
    }

    /// Every cell plus the derived per-1,000 lines, in report order.
    fn flat(&self) -> Vec<Flat<'_>> {
        let look = Lookup::new(&self.cells);
        let mut out: Vec<Flat<'_>> = self
            .cells
            .iter()
            .map(|c| Flat {
                date: c.date,
                scope: &c.scope,
                row: c.row.code(),
                column: c.column.code(),
                value: Value::Count(c.value),
            })
            .collect();
        for &date in &self.dates {
            for scope in &self.scopes {
                for col in Column::ALL {
                    if let Some(rate) = look.per_1000(date, scope, col) {
                        out.push(Flat {
                            date,
                            scope,
                            row: PER_1000,
                            column: col.code(),
                            value: Value::Rate(rate),
                        });
                    }
                }
            }
        }
        out
    }

    /// A line chart of the region's main rows (TOTAL column) over the reference dates.
    pub fn to_svg(&self) -> String {
        let look = Lookup::new(&self.cells);
        let series: Vec<Series> = SERIES
            .iter()
            .filter(|(row, ..)| self.rows.contains(row))
            .map(|&(row, column, label, colour, dashed)| Series {
                label,
                colour,
                dashed,
                points: self
                    .dates
                    .iter()
                    .map(|&d| look.get(d, REGION, row, column).flatten())
                    .collect(),
            })
            .collect();
        let targets: Vec<String> = self
            .indicator_lines(&self.indicators)
            .iter()
            .map(|l| {
                format!(
                    "{}: ijkpunt {}; doel {}",
                    l.indicator.name,
                    l.indicator.baseline_text(),
                    l.indicator.target_text()
                )
            })
            .collect();
        svg(&self.rule, &self.dates, &series, &targets)
    }
}

/// The chart's lines: row, column, legend, colour, dashed.
const SERIES: [(Row, Column, &str, &str, bool); 7] = [
    (
        Row::TotalNotAttending,
        Column::Total,
        "Totaal niet-schoolgaand",
        "#222222",
        false,
    ),
    (
        Row::TotalNotAttending,
        Column::Longer,
        "waarvan > 3 maanden",
        "#222222",
        true,
    ),
    (
        Row::WithoutOffer,
        Column::Longer,
        "zonder aanbod > 3 maanden",
        "#b2182b",
        true,
    ),
    (Row::AvPo, Column::Total, "AV PO", "#1b9e77", false),
    (Row::AvVo, Column::Total, "AV VO", "#d95f02", false),
    (Row::LrvPo, Column::Total, "LRV PO", "#7570b3", false),
    (Row::LrvVo, Column::Total, "LRV VO", "#e7298a", false),
];

#[derive(Serialize)]
struct Flat<'a> {
    date: NaiveDate,
    scope: &'a str,
    row: &'a str,
    column: &'a str,
    value: Value,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Value {
    Count(Option<u64>),
    Rate(Option<f64>),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Count(v) => v.map(|n| n.to_string()).unwrap_or_default(),
            Value::Rate(v) => v.map(|r| format!("{r:.2}")).unwrap_or_default(),
        }
    }
}

fn count_text(v: Option<u64>) -> String {
    v.map_or_else(|| "x".to_string(), |n| n.to_string())
}

fn rate_text(v: Option<f64>) -> String {
    v.map_or_else(|| "x".to_string(), |r| format!("{r:.1}"))
}

struct Series {
    label: &'static str,
    colour: &'static str,
    dashed: bool,
    points: Vec<Option<u64>>,
}

const W: f64 = 800.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 270.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn svg(rule: &str, dates: &[NaiveDate], series: &[Series], targets: &[String]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(max);
    let height = H + 18.0 * targets.len() as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"28\" font-size=\"16\">Niet-schoolgaande leerplichtigen, regio (regel: {})</text>\n",
        escape(rule)
    );
    for (i, t) in targets.iter().enumerate() {
        let y = H + 4.0 + 18.0 * i as f64;
        let _ = writeln!(out, "<text x=\"{LEFT}\" y=\"{y}\">{}</text>", escape(t));
    }
    out.push_str(&axes(dates, top));
    for s in series {
        out.push_str(&line(s, dates.len(), top));
    }
    out.push_str(&legend(series));
    out.push_str("</svg>\n");
    out
}

fn x_of(i: usize, n: usize) -> f64 {
    let width = W - LEFT - RIGHT;
    if n <= 1 {
        return LEFT + width / 2.0;
    }
    LEFT + width * i as f64 / (n - 1) as f64
}

fn y_of(v: u64, top: u64) -> f64 {
    let height = H - TOP - BOTTOM;
    H - BOTTOM - height * v as f64 / top.max(1) as f64
}

fn nice_ceiling(max: u64) -> u64 {
    let mut step = 1;
    while step * 10 < max.max(1) {
        step *= 10;
    }
    max.max(1).div_ceil(step) * step
}

fn axes(dates: &[NaiveDate], top: u64) -> String {
    let (x0, x1, y0) = (LEFT, W - RIGHT, H - BOTTOM);
    let mut out = format!("<g stroke=\"#888\"><line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\"/><line x1=\"{x0}\" y1=\"{TOP}\" x2=\"{x0}\" y2=\"{y0}\"/></g>\n");
    for k in 0..=4u64 {
        let v = top * k / 4;
        let y = y_of(v, top);
        let _ = writeln!(out, "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>", x0 - 6.0, y + 4.0);
    }
    for (i, d) in dates.iter().enumerate() {
        let x = x_of(i, dates.len());
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y0 + 20.0,
            d.format("%d-%m-%Y")
        );
    }
    out
}

/// Segments between consecutive visible points; a suppressed point leaves a gap.
fn line(s: &Series, n: usize, top: u64) -> String {
    let dash = if s.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let mut out = String::new();
    let points: Vec<Option<(f64, f64)>> = s
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| p.map(|v| (x_of(i, n), y_of(v, top))))
        .collect();
    for pair in points.windows(2) {
        if let [Some((xa, ya)), Some((xb, yb))] = pair {
            let _ = writeln!(out, "<line x1=\"{xa:.1}\" y1=\"{ya:.1}\" x2=\"{xb:.1}\" y2=\"{yb:.1}\" stroke=\"{}\" stroke-width=\"2\"{dash}/>", s.colour);
        }
    }
    for (x, y) in points.iter().flatten() {
        let _ = writeln!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{}\"/>",
            s.colour
        );
    }
    out
}

fn legend(series: &[Series]) -> String {
    let x = W - RIGHT + 20.0;
    let mut out = String::new();
    for (i, s) in series.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let dash = if s.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = writeln!(out, "<line x1=\"{x}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>", x + 24.0, s.colour, x + 30.0, y + 4.0, escape(s.label));
    }
    let _ = writeln!(
        out,
        "<text x=\"{x}\" y=\"{:.1}\" fill=\"#666\">gaten = onderdrukt (kleine aantallen)</text>",
        TOP + 10.0 + 20.0 * series.len() as f64
    );
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
