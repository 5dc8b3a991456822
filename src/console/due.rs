//! The Signaleringslijst: the children on the clock from four weeks (`POST /v1/due-list`), with
//! their band, the escalation step and who holds which signal. Without a form only the node's own
//! signals; the form (CSRF) passes the person's claim on to the partners.

use super::pages::{check_form, render, FormKey, Layout};
use super::person::Person;
use super::query::ClaimForm;
use super::signals::{code, dutch, CATEGORIES};
use super::Console;
use crate::rest::clock::{DueLine, DueList, DueRequest};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use std::sync::Arc;

/// Where the form posts.
pub const ACTION: &str = "/signaleringslijst";

/// The bands, by the node's code, in Dutch.
const BANDS: &[(&str, &str)] = &[
    ("4_WEEKS", "4 weken of langer"),
    ("8_WEEKS", "8 weken of langer"),
    ("10_WEEKS", "10 weken of langer"),
    ("12_WEEKS", "12 weken of langer"),
    ("OVER_3_MONTHS", "langer dan drie maanden"),
];

/// A child as the table shows it.
pub struct Row {
    pub pseudonym: String,
    pub band: String,
    pub weeks: u32,
    pub categories: String,
    pub municipalities: String,
    pub holders: String,
    pub step: String,
}

impl From<&DueLine> for Row {
    fn from(l: &DueLine) -> Self {
        let holders = l
            .holders
            .iter()
            .map(|h| {
                let partner = if h.partner == "self" {
                    "eigen node"
                } else {
                    &h.partner
                };
                if h.source_record_id.is_empty() {
                    partner.to_owned()
                } else {
                    format!("{partner} ({})", h.source_record_id)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            pseudonym: l.pupil_pseudonym.clone(),
            band: dutch(BANDS, &l.band),
            weeks: l.weeks,
            categories: l
                .categories
                .iter()
                .map(|c| dutch(CATEGORIES, &code(c)))
                .collect::<Vec<_>>()
                .join(", "),
            municipalities: l.residence_municipalities.join(", "),
            holders,
            step: l.escalation_step.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/signaleringslijst.html")]
struct DuePage {
    layout: Layout,
    csrf: String,
    /// The token of the BSN look-up form.
    lookup_csrf: String,
    claim: ClaimForm,
    with_partners: bool,
    at: String,
    rows: Vec<Row>,
    failures: Vec<String>,
    problem: Option<String>,
}

/// The form: the claim and its token.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct DueForm {
    pub csrf: String,
    #[serde(flatten)]
    pub claim: ClaimForm,
}

async fn show(
    console: &Console,
    person: &Person,
    key: &FormKey,
    claim: Option<ClaimForm>,
) -> Response {
    let request = DueRequest {
        claim: claim.as_ref().map(|c| c.claim(person)),
        at: None,
        timeout_ms: 0,
    };
    let answer = console
        .node
        .post::<_, DueList>("/v1/due-list", &person.name, &request)
        .await;
    let mut page = DuePage {
        layout: Layout::new(console, "Signaleringslijst", "signaleringslijst", person),
        csrf: key.token(console, person, ACTION),
        lookup_csrf: key.token(console, person, super::child::LOOKUP),
        with_partners: claim.is_some(),
        claim: claim.unwrap_or_default(),
        at: String::new(),
        rows: Vec::new(),
        failures: Vec::new(),
        problem: None,
    };
    match answer {
        Ok(list) => {
            page.at = list.at.format("%d-%m-%Y").to_string();
            page.rows = list.lines.iter().map(Row::from).collect();
            page.failures = list
                .failures
                .iter()
                .map(|f| format!("{}: {} ({})", f.peer, f.message, f.code))
                .collect();
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &page)
        }
    }
}

/// `GET /signaleringslijst`: the node's own signals.
pub async fn own(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
) -> Response {
    show(&console, &person, &key, None).await
}

/// `POST /signaleringslijst`: with the partners' signals under the person's claim.
pub async fn with_partners(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(form): Form<DueForm>,
) -> Response {
    if let Err(refused) = check_form(&console, &headers, &person, ACTION, &form.csrf) {
        return *refused;
    }
    show(&console, &person, &key, Some(form.claim)).await
}

#[cfg(test)]
mod tests {
    use crate::clock::DueBand;

    #[test]
    fn every_band_of_the_clock_has_its_dutch_name() {
        for band in [
            DueBand::Weeks4,
            DueBand::Weeks8,
            DueBand::Weeks10,
            DueBand::Weeks12,
            DueBand::OverThreeMonths,
        ] {
            assert!(
                super::BANDS.iter().any(|(code, _)| *code == band.code()),
                "{}",
                band.code()
            );
        }
    }
}
