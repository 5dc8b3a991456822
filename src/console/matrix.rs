//! The Convenantmatrix page: the covenant's matrix (Bijlage 3) in Dutch from the node's active
//! policy (`GET /v1/covenant/matrix`), every id resolved to what it stands for, printable (the
//! stylesheet's print rules drop menu and forms). Shows; decides nothing, holds no pupil data.

use super::pages::{render, Layout};
use super::person::Person;
use super::Console;
use crate::rest::covenant::{CovenantMatrix, MatrixMeeting};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use std::sync::Arc;

/// The covenant matrix page.
pub const PAGE: &str = "/privacy/matrix";

/// A seat of a case meeting as the matrix shows it: ids resolved to their Dutch text.
pub struct SeatView {
    pub who: String,
    pub bases: Vec<String>,
    pub purposes: Vec<String>,
    pub categories: Vec<String>,
}

/// A case meeting as the matrix shows it.
pub struct MeetingView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub purposes: Vec<String>,
    pub seats: Vec<SeatView>,
    pub rules: Vec<String>,
}

/// A routine flow as the matrix shows it.
pub struct FlowView {
    pub name: String,
    pub from_to: String,
    pub role: String,
    pub bases: Vec<String>,
    pub purpose: String,
    pub categories: Vec<String>,
    pub scope: &'static str,
}

/// The matrix with every id resolved.
pub struct MatrixView {
    pub name: String,
    pub description: String,
    pub text_version: String,
    pub policy_version: String,
    pub meetings: Vec<MeetingView>,
    pub flows: Vec<FlowView>,
    pub bases: Vec<(String, String, String, &'static str)>,
    pub categories: Vec<(String, String, String)>,
}

fn resolve(ids: &[String], text: impl Fn(&str) -> Option<String>) -> Vec<String> {
    ids.iter()
        .map(|id| text(id).unwrap_or_else(|| id.clone()))
        .collect()
}

fn scope_text(code: &str) -> &'static str {
    match code {
        "residents" => "alleen leerlingen die in de gemeente(n) van de ontvanger wonen",
        "schools" => "alleen leerlingen van de scholen van de ontvanger",
        "own" => "het eigen bereik van de ontvanger (inwoners of scholen)",
        _ => "NIET BEPERKT: de ontvanger ziet elke leerling",
    }
}

impl MatrixView {
    fn from(m: &CovenantMatrix) -> Self {
        let basis = |id: &str| {
            m.legal_bases
                .iter()
                .find(|b| b.id == id)
                .map(|b| format!("{} {}", b.law, b.article))
        };
        let purpose = |id: &str| {
            m.purposes
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.text.clone())
        };
        let category = |id: &str| {
            m.data_categories.iter().find(|d| d.id == id).map(|d| {
                let special = if d.special { " (bijzonder)" } else { "" };
                format!("{}{special}", d.name)
            })
        };
        let meetings = m
            .meetings
            .iter()
            .map(|meeting| MeetingView {
                id: meeting.id.clone(),
                name: meeting.name.clone(),
                description: meeting.description.clone(),
                purposes: resolve(&meeting.purposes, purpose),
                seats: meeting
                    .participants
                    .iter()
                    .map(|s| SeatView {
                        who: format!("{} ({})", s.org_type_name, s.role),
                        bases: resolve(&s.legal_bases, basis),
                        purposes: resolve(&s.purposes, purpose),
                        categories: resolve(&s.data_categories, category),
                    })
                    .collect(),
                rules: meeting_rules(meeting),
            })
            .collect();
        let flows = m
            .routine_flows
            .iter()
            .map(|f| FlowView {
                name: f.name.clone(),
                from_to: format!("{} naar {}", f.from.join(", "), f.to.join(", ")),
                role: f.role.clone(),
                bases: resolve(&f.legal_bases, basis),
                purpose: purpose(&f.purpose).unwrap_or_else(|| f.purpose.clone()),
                categories: resolve(&f.data_categories, category),
                scope: scope_text(&f.scope),
            })
            .collect();
        Self {
            name: m.name.clone(),
            description: m.description.clone(),
            text_version: m.text_version.clone(),
            policy_version: m.policy_version.clone(),
            meetings,
            flows,
            bases: m
                .legal_bases
                .iter()
                .map(|b| {
                    (
                        format!("{} {}", b.law, b.article),
                        b.text.clone(),
                        b.source.clone(),
                        if b.verified { "ja" } else { "nee" },
                    )
                })
                .collect(),
            categories: m
                .data_categories
                .iter()
                .map(|d| {
                    let special = if d.special {
                        " Bijzonder persoonsgegeven (AVG art. 9)."
                    } else {
                        ""
                    };
                    (
                        d.name.clone(),
                        format!("signalen {}{special}", d.signal_categories.join(", ")),
                        d.fields.join(", "),
                    )
                })
                .collect(),
        }
    }
}

/// The case rules of a meeting, in plain Dutch.
fn meeting_rules(m: &MatrixMeeting) -> Vec<String> {
    let mut rules = vec![
        format!(
            "Alleen een {} mag een casus openen en de regie voeren.",
            m.lead.join(" of ")
        ),
        format!(
            "Hoogstens {} leerlingen per casus (een kind en eventueel broers en zussen).",
            m.max_pupils
        ),
    ];
    rules.push(if m.needs_acceptance {
        "Elke deelnemer accepteert een gedeelde casus eerst zelf; tot dan geeft de casus bij haar niets vrij.".into()
    } else {
        "Geen acceptatie nodig: een gedeelde casus geeft direct toegang.".into()
    });
    rules.push(if m.may_record_offer.is_empty() {
        "Niemand in de casus legt een zorgaanbod vast; dat doet de organisatie die het signaal heeft.".into()
    } else {
        format!(
            "Een {} in de casus mag een zorgaanbod vastleggen.",
            m.may_record_offer.join(" of ")
        )
    });
    rules
}

#[derive(Template)]
#[template(path = "console/matrix.html")]
struct MatrixPage {
    layout: Layout,
    matrix: Option<MatrixView>,
    problem: Option<String>,
}

/// `GET /privacy/matrix`: the covenant's matrix (Bijlage 3), printable.
pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
) -> Response {
    let answer = console
        .node
        .get::<CovenantMatrix>("/v1/covenant/matrix", &person.name)
        .await;
    let mut page = MatrixPage {
        layout: Layout::new(&console, "Convenantmatrix", "matrix", &person),
        matrix: None,
        problem: None,
    };
    match answer {
        Ok(m) => {
            page.matrix = Some(MatrixView::from(&m));
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &page)
        }
    }
}
