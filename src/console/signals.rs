//! The Signalen page: the organisation's own signals from `GET /v1/signals`, with filters and
//! paging, pupils by pseudonym only. The filters and page token in its URL are codes and the
//! node's opaque token, never a pupil's number.

use super::pages::{render, Layout};
use super::person::Person;
use super::Console;
use crate::rest::signals::{SignalPage, SignalView};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use std::sync::Arc;

/// Signals per page.
const PAGE_SIZE: u32 = 50;

/// The categories, by code, with their Dutch names.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("LRV", "Langdurig relatief verzuim"),
    ("AV", "Absoluut verzuim"),
    ("VRIJSTELLING_5A", "Vrijstelling 5 onder a"),
    ("VRIJSTELLING_5B", "Vrijstelling 5 onder b"),
    ("VRIJSTELLING_5C", "Vrijstelling 5 onder c"),
    ("LANGDURIG_ZIEK", "Langdurig ziekteverzuim"),
    ("SCHORSING", "Schorsing"),
    ("VERWIJDERING", "Verwijdering"),
    ("VERZUIM", "Ongeoorloofd verzuim"),
];

/// The statuses, by code, with their Dutch names.
pub const STATUSES: &[(&str, &str)] = &[
    ("OPEN", "Open (geen aanbod)"),
    ("AANBOD", "Aanbod gedaan"),
    ("TERUGGELEID", "Terug op school"),
    ("GESLOTEN", "Gesloten"),
];

/// The page's filters, as the browser sends them; anything not a known code is dropped.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    pub categorie: String,
    pub status: String,
    pub gemeente: String,
    pub pagina: String,
}

impl Filter {
    /// Only known codes, a CBS code and a base64url token survive.
    fn checked(self) -> Self {
        let known = |code: String, list: &[(&str, &str)]| {
            if list.iter().any(|(c, _)| *c == code) {
                code
            } else {
                String::new()
            }
        };
        let cbs = |g: &str| {
            g.len() == 6 && g.starts_with("GM") && g[2..].bytes().all(|b| b.is_ascii_digit())
        };
        let token = |t: &str| {
            t.len() <= 512
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        Self {
            categorie: known(self.categorie, CATEGORIES),
            status: known(self.status, STATUSES),
            gemeente: if cbs(&self.gemeente) {
                self.gemeente
            } else {
                String::new()
            },
            pagina: if token(&self.pagina) {
                self.pagina
            } else {
                String::new()
            },
        }
    }

    /// The query pairs (all values are codes of safe characters; nothing to escape).
    fn pairs(&self, keys: [&str; 4], page: &str) -> String {
        [
            (keys[0], self.categorie.as_str()),
            (keys[1], self.status.as_str()),
            (keys[2], self.gemeente.as_str()),
            (keys[3], page),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// A signal as the table shows it.
pub struct Row {
    pub record: String,
    pub pseudonym: String,
    pub category: String,
    pub sector: String,
    pub municipality: String,
    pub school: String,
    pub absent_since: String,
    pub status: String,
    pub offer: String,
}

/// A DTO value's code (its JSON string).
pub fn code(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The Dutch name of a code in `list`, or the code.
pub fn dutch(list: &[(&str, &str)], code: &str) -> String {
    list.iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, name)| name)
        .to_owned()
}

impl From<&SignalView> for Row {
    fn from(s: &SignalView) -> Self {
        Self {
            record: s.source_record_id.clone(),
            pseudonym: s.pupil_pseudonym.clone(),
            category: dutch(CATEGORIES, &code(&s.category)),
            sector: s.sector.as_ref().map(code).unwrap_or_default(),
            municipality: s.residence_municipality.clone(),
            school: s.school.clone(),
            absent_since: s.absent_since.format("%d-%m-%Y").to_string(),
            status: dutch(STATUSES, &code(&s.status)),
            offer: s
                .offer_date
                .map(|d| d.format("%d-%m-%Y").to_string())
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/signalen.html")]
struct SignalsPage<'a> {
    layout: Layout,
    organisation: &'a str,
    categories: &'static [(&'static str, &'static str)],
    statuses: &'static [(&'static str, &'static str)],
    filter: Filter,
    rows: Vec<Row>,
    next: String,
    problem: Option<String>,
}

/// `GET /signalen`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Query(filter): Query<Filter>,
) -> Response {
    let filter = filter.checked();
    let keys = ["category", "status", "residenceMunicipality", "pageToken"];
    let mut path = format!("/v1/signals?pageSize={PAGE_SIZE}");
    let query = filter.pairs(keys, &filter.pagina);
    if !query.is_empty() {
        path = format!("{path}&{query}");
    }
    let answer = console.node.get::<SignalPage>(&path, &person.name).await;
    let (rows, next, problem) = match answer {
        Ok(page) => {
            let next = page.next_page_token.as_deref().map_or(String::new(), |t| {
                format!(
                    "/signalen?{}",
                    filter.pairs(["categorie", "status", "gemeente", "pagina"], t)
                )
            });
            (page.signals.iter().map(Row::from).collect(), next, None)
        }
        Err(e) => (Vec::new(), String::new(), Some(e.to_string())),
    };
    let status = if problem.is_some() {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    let page = SignalsPage {
        layout: Layout::new(&console, "Signalen", "signalen", &person),
        organisation: &console.own.name,
        categories: CATEGORIES,
        statuses: STATUSES,
        filter,
        rows,
        next,
        problem,
    };
    render(status, &page)
}
