//! Rapportage: the G4 result schema of the node (`POST /v1/reports`, rule g4) at the three most
//! recent reference dates (1 November, 1 February, 1 June), and its CSV download (the same call
//! with `Accept: text/csv`). Shows the node's cells; counts nothing itself.

use super::pages::{render, Layout};
use super::person::Person;
use super::Console;
use crate::rest::clock::{Report, ReportCell, ReportRequest};
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
            .map_or("onderdrukt".to_owned(), |c| {
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
            shorter: count(date, row, "SHORTER"),
            longer: count(date, row, "LONGER"),
            total: count(date, row, "TOTAL"),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/rapportage.html")]
struct ReportPage {
    layout: Layout,
    rule: &'static str,
    dates: String,
    rows: Vec<Row>,
    unavailable: String,
    problem: Option<String>,
}

/// `GET /rapportage`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
) -> Response {
    let request = request();
    let answer = console
        .node
        .post::<_, Report>("/v1/reports", &person.name, &request)
        .await;
    let mut page = ReportPage {
        layout: Layout::new(&console, "Rapportage", "rapportage", &person),
        rule: RULE,
        dates: request.at.join(", "),
        rows: Vec::new(),
        unavailable: String::new(),
        problem: None,
    };
    match answer {
        Ok(report) => {
            page.rows = rows(&report.cells);
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
