//! The Navragen page: a federated query through the organisation's node
//! (`POST /v1/federated-queries`), the person as the claim's actor. A POST form with a CSRF
//! token; the node and every peer check the claim, the page shows what each peer shared.

use super::pages::{check_form, render, FormKey, Layout};
use super::person::Person;
use super::signals::{code, dutch, CATEGORIES, STATUSES};
use super::Console;
use crate::rest::federation::{
    AccessClaim, FederatedQueryRequest, FederatedQueryResponse, QueryFilter, SharedSignal,
};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use std::sync::Arc;

/// Where the form posts.
pub const ACTION: &str = "/navragen";

/// The claim of a form that asks the partners: who asks, on which basis, why, in which flow.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct ClaimForm {
    pub rol: String,
    pub grondslag: String,
    pub doel: String,
    pub stroom: String,
}

impl Default for ClaimForm {
    /// The leerplichtambtenaar's routine flow (verzuimmelding), the usual question.
    fn default() -> Self {
        Self {
            rol: "leerplichtambtenaar".into(),
            grondslag: "lpw-art21".into(),
            doel: "verzuimaanpak".into(),
            stroom: "verzuimmelding".into(),
        }
    }
}

impl ClaimForm {
    /// The REST claim, `person` acting.
    pub fn claim(&self, person: &Person) -> AccessClaim {
        AccessClaim {
            role: self.rol.trim().to_owned(),
            legal_basis: self.grondslag.trim().to_owned(),
            purpose: self.doel.trim().to_owned(),
            actor: person.name.clone(),
            routine_flow: Some(self.stroom.trim().to_owned()),
            case_ref: None,
        }
    }
}

/// The form, as sent (and shown again).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct QueryForm {
    pub csrf: String,
    #[serde(flatten)]
    pub claim: ClaimForm,
    pub gemeente: String,
    pub dagen: String,
}

/// A shared signal as the table shows it.
pub struct Row {
    pub pseudonym: String,
    pub category: String,
    pub municipality: String,
    pub school: String,
    pub absent_since: String,
    pub status: String,
}

/// One peer's answer.
pub struct Answer {
    pub holder: String,
    pub rule: String,
    pub activity: String,
    pub rows: Vec<Row>,
}

/// What a peer did not disclose shows as "niet gedeeld".
pub fn shown(value: Option<String>) -> String {
    value.unwrap_or_else(|| "niet gedeeld".into())
}

impl From<&SharedSignal> for Row {
    fn from(s: &SharedSignal) -> Self {
        Self {
            pseudonym: shown(s.pupil_pseudonym.clone()),
            category: shown(s.category.as_ref().map(|c| dutch(CATEGORIES, &code(c)))),
            municipality: shown(s.residence_municipality.clone()),
            school: shown(s.school.clone()),
            absent_since: shown(s.absent_since.map(|d| d.format("%d-%m-%Y").to_string())),
            status: shown(s.status.as_ref().map(|c| dutch(STATUSES, &code(c)))),
        }
    }
}

#[derive(Template)]
#[template(path = "console/navragen.html")]
struct QueryPage<'a> {
    layout: Layout,
    organisation: &'a str,
    csrf: String,
    form: QueryForm,
    asked: bool,
    answers: Vec<Answer>,
    failures: Vec<String>,
    problem: Option<String>,
}

fn page<'a>(
    console: &'a Console,
    person: &Person,
    key: &FormKey,
    form: QueryForm,
) -> QueryPage<'a> {
    QueryPage {
        layout: Layout::new(console, "Navragen bij partners", "navragen", person),
        organisation: &console.own.name,
        csrf: key.token(console, person, ACTION),
        form,
        asked: false,
        answers: Vec::new(),
        failures: Vec::new(),
        problem: None,
    }
}

/// `GET /navragen`: the form.
pub async fn form(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
) -> Response {
    render(
        StatusCode::OK,
        &page(&console, &person, &key, QueryForm::default()),
    )
}

/// `POST /navragen`: the query, after the CSRF check.
pub async fn ask(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(form): Form<QueryForm>,
) -> Response {
    if let Err(refused) = check_form(&console, &headers, &person, ACTION, &form.csrf) {
        return *refused;
    }
    let request = FederatedQueryRequest {
        claim: form.claim.claim(&person),
        filter: QueryFilter {
            residence_municipality: form.gemeente.trim().to_owned(),
            open_longer_than_days: form.dagen.trim().parse().unwrap_or(0),
            ..QueryFilter::default()
        },
        timeout_ms: 0,
    };
    let answer = console
        .node
        .post::<_, FederatedQueryResponse>("/v1/federated-queries", &person.name, &request)
        .await;
    let mut shown = page(&console, &person, &key, form);
    shown.asked = true;
    match answer {
        Ok(response) => {
            shown.answers = response
                .answers
                .iter()
                .filter(|a| !a.signals.is_empty())
                .map(|a| Answer {
                    holder: a.holder_name.clone(),
                    rule: a.rule.clone(),
                    activity: a.processing_activity.clone(),
                    rows: a.signals.iter().map(Row::from).collect(),
                })
                .collect();
            shown.failures = response
                .failures
                .iter()
                .map(|f| format!("{}: {} ({})", f.peer, f.message, f.code))
                .collect();
            render(StatusCode::OK, &shown)
        }
        Err(e) => {
            shown.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &shown)
        }
    }
}
