//! Rapportage: the G4 result schema of the node (`POST /v1/reports`, rule g4) at the three most
//! recent reference dates (1 November, 1 February, 1 June) with the pact's baselines and
//! targets, the chart (the same call with `Accept: image/svg+xml`, the node's renderer, inlined
//! with a title and description; no script), and its CSV download (`Accept: text/csv`). Shows
//! the node's figures; counts nothing itself.

use super::pages::{render, Layout};
use super::person::Person;
use super::Console;
use crate::clock::Column;
use crate::rest::clock::{Report, ReportCell, ReportIndicator, ReportRequest};
use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Datelike as _;
use std::sync::Arc;

/// The counting rule of the G4 result schema.
const RULE: &str = "g4";

/// The three most recent reference dates (ijkmomenten) up to `today`, oldest first.
pub fn reference_dates(today: chrono::NaiveDate) -> Vec<chrono::NaiveDate> {
    let mut dates: Vec<_> = (today.year() - 2..=today.year())
        .flat_map(|y| [(y, 2, 1), (y, 6, 1), (y, 11, 1)])
        .filter_map(|(y, m, d)| chrono::NaiveDate::from_ymd_opt(y, m, d))
        .filter(|d| *d <= today)
        .collect();
    dates.sort();
    dates.split_off(dates.len().saturating_sub(3))
}

fn request() -> ReportRequest {
    ReportRequest {
        rule: RULE.into(),
        at: reference_dates(chrono::Utc::now().date_naive())
            .iter()
            .map(|d| d.to_string())
            .collect(),
        claim: None,
        timeout_ms: 0,
    }
}

/// A row of the table: one reference date and row of the schema, region-wide.
pub struct Row {
    pub date: String,
    pub row: String,
    pub shorter: String,
    pub longer: String,
    pub total: String,
}

fn rows(cells: &[ReportCell]) -> Vec<Row> {
    let region: Vec<&ReportCell> = cells.iter().filter(|c| c.scope == "region").collect();
    let count = |date, row: &str, column: &str| {
        region
            .iter()
            .find(|c| c.date == date && c.row == row && c.column == column)
            // No such cell (the resident pupils have only a total), or a hidden one.
            .map_or("n.v.t.".to_owned(), |c| {
                c.count.map_or("onderdrukt".to_owned(), |n| n.to_string())
            })
    };
    let mut keys: Vec<(chrono::NaiveDate, &str)> =
        region.iter().map(|c| (c.date, c.row.as_str())).collect();
    keys.dedup();
    keys.into_iter()
        .map(|(date, row)| Row {
            date: date.format("%d-%m-%Y").to_string(),
            row: row.to_owned(),
            shorter: count(date, row, Column::Shorter.code()),
            longer: count(date, row, Column::Longer.code()),
            total: count(date, row, Column::Total.code()),
        })
        .collect()
}

/// A pact indicator at one reference date, as the table shows it.
pub struct IndicatorRow {
    pub date: String,
    pub figure: String,
    pub change: String,
    pub target: String,
}

/// A pact indicator: baseline, target and its figures.
pub struct IndicatorView {
    pub name: String,
    pub baseline: String,
    pub target: String,
    pub source: String,
    pub rows: Vec<IndicatorRow>,
}

impl From<&ReportIndicator> for IndicatorView {
    fn from(i: &ReportIndicator) -> Self {
        Self {
            name: i.name.clone(),
            baseline: i.baseline.clone(),
            target: i.target.clone(),
            source: i.source.clone(),
            rows: i
                .figures
                .iter()
                .map(|f| IndicatorRow {
                    date: f.date.format("%d-%m-%Y").to_string(),
                    figure: f.figure.map_or("onderdrukt".into(), |n| n.to_string()),
                    change: f
                        .change_percent
                        .map_or("onbekend".into(), |c| format!("{c:+.1}%")),
                    target: f.target.map_or("onbekend".into(), |t| format!("{t:.0}")),
                })
                .collect(),
        }
    }
}

/// The node's chart with a title and a description for screen readers (the same figures are
/// in the tables), or None if the node gave no SVG.
fn accessible_chart(svg: &[u8], dates: &str) -> Option<String> {
    let svg = std::str::from_utf8(svg).ok()?;
    let open = svg.find("<svg")?;
    let end = open + svg[open..].find('>')?;
    if svg[..end].contains("<script") || svg.contains("<script") {
        return None;
    }
    Some(format!(
        "{} role=\"img\" aria-labelledby=\"grafiek-titel grafiek-uitleg\"><title id=\"grafiek-titel\">Niet-schoolgaande leerplichtigen in de regio per peildatum</title><desc id=\"grafiek-uitleg\">Lijngrafiek van het totaal niet-schoolgaand, waarvan langer dan drie maanden, zonder aanbod langer dan drie maanden, en absoluut en relatief verzuim in po en vo, op de peildata {dates}, met de ijkpunten en doelen van het pact. Dezelfde cijfers staan in de tabellen op deze pagina.</desc>{}",
        &svg[open..end],
        &svg[end + 1..]
    ))
}

#[derive(Template)]
#[template(path = "console/rapportage.html")]
struct ReportPage {
    layout: Layout,
    rule: &'static str,
    dates: String,
    rows: Vec<Row>,
    indicators: Vec<IndicatorView>,
    /// The chart (SVG from the node, with title and description).
    chart: Option<String>,
    unavailable: String,
    problem: Option<String>,
}

/// `GET /rapportage`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
) -> Response {
    let request = request();
    let (answer, chart) = tokio::join!(
        console
            .node
            .post::<_, Report>("/v1/reports", &person.name, &request),
        console
            .node
            .post_for("/v1/reports", &person.name, &request, "image/svg+xml"),
    );
    let mut page = ReportPage {
        layout: Layout::new(&console, "Rapportage", "rapportage", &person),
        rule: RULE,
        dates: request.at.join(", "),
        rows: Vec::new(),
        indicators: Vec::new(),
        chart: None,
        unavailable: String::new(),
        problem: None,
    };
    let dates: Vec<String> = reference_dates(chrono::Utc::now().date_naive())
        .iter()
        .map(|d| d.format("%d-%m-%Y").to_string())
        .collect();
    page.chart = chart
        .ok()
        .and_then(|svg| accessible_chart(&svg, &dates.join(", ")));
    match answer {
        Ok(report) => {
            page.rows = rows(&report.cells);
            page.indicators = report.indicators.iter().map(IndicatorView::from).collect();
            page.unavailable = report.unavailable_rows.join(", ");
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &page)
        }
    }
}

/// `GET /rapportage.csv`: the node's CSV of the same report.
pub async fn csv(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
) -> Response {
    match console
        .node
        .post_csv("/v1/reports", &person.name, &request())
        .await
    {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"g4-rapportage.csv\"",
                ),
            ],
            csv,
        )
            .into_response(),
        Err(e) => super::pages::refusal(
            StatusCode::BAD_GATEWAY,
            "Rapportage niet beschikbaar",
            &format!("De node weigerde de rapportage: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_chart_gets_a_title_and_description_and_a_script_is_refused() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="8"><text>1</text></svg>"#;
        let chart = super::accessible_chart(svg, "01-11-2026").unwrap();
        assert!(chart.starts_with(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="8" role="img" aria-labelledby="grafiek-titel grafiek-uitleg"><title id="grafiek-titel">"#
        ), "{chart}");
        assert!(chart.contains("op de peildata 01-11-2026, met"), "{chart}");
        assert!(chart.ends_with("<text>1</text></svg>"));
        assert!(super::accessible_chart(b"<svg><script>x</script></svg>", "").is_none());
        assert!(super::accessible_chart(b"no chart", "").is_none());
    }

    #[test]
    fn the_three_latest_reference_dates() {
        let d = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            super::reference_dates(d(2026, 12, 1)),
            vec![d(2026, 2, 1), d(2026, 6, 1), d(2026, 11, 1)]
        );
        assert_eq!(
            super::reference_dates(d(2026, 1, 31)),
            vec![d(2025, 2, 1), d(2025, 6, 1), d(2025, 11, 1)]
        );
    }
}
