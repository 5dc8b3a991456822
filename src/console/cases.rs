//! The Casussen page: the open cases of the organisation's node (`GET /v1/cases`), and on each a
//! form "Zorgaanbod vastleggen" (`POST /v1/cases/{caseId}/offers`), the person as the actor. A
//! POST form with a CSRF token; the node decides (the meeting's `may_record_offer`, the case's
//! acceptance), audits and tells the other participants. Pupils appear by pseudonym only.

use super::pages::{check_form, render, FormKey, Layout};
use super::person::Person;
use super::Console;
use crate::rest::cases::{CareOfferKind, Case, CaseList, OfferResponse, RecordOfferRequest};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use std::sync::Arc;

/// The page.
pub const PAGE: &str = "/casussen";
/// Where the care-offer forms post.
pub const OFFER: &str = "/casussen/zorgaanbod";

/// The care-offer form, as sent.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct OfferForm {
    pub csrf: String,
    pub casus: String,
    pub leerling: String,
    /// "zorg" or "onderwijs-en-zorg".
    pub soort: String,
    /// YYYY-MM-DD.
    pub gedaan_op: String,
    /// YYYY-MM-DD, or empty for a waiting list.
    pub plek_vanaf: String,
    /// "ja" when ticked.
    pub ouders: String,
}

/// A case as the page shows it.
pub struct Row {
    pub id: String,
    /// The form's id attribute (unique on the page).
    pub form_id: String,
    pub meeting: String,
    pub purpose: String,
    pub lead: String,
    pub participants: String,
    pub acceptance: &'static str,
    pub pupils: Vec<String>,
}

impl Row {
    fn new(i: usize, c: &Case) -> Self {
        use crate::rest::cases::CaseAcceptance as A;
        Self {
            id: c.id.clone(),
            form_id: format!("zorgaanbod-{i}"),
            meeting: c.meeting_type.clone(),
            purpose: c.purpose.clone(),
            lead: c.lead.name.clone(),
            participants: c
                .participants
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            acceptance: match c.acceptance {
                A::Pending => "nog niet beoordeeld",
                A::Accepted => "geaccepteerd",
                A::Declined => "geweigerd",
            },
            pupils: c.pupil_pseudonyms.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/casussen.html")]
struct CasesPage {
    layout: Layout,
    csrf: String,
    today: String,
    rows: Vec<Row>,
    recorded: Option<String>,
    problem: Option<String>,
}

/// The page with the node's open cases (or why they cannot be shown).
async fn page(console: &Console, person: &Person, key: &FormKey) -> (StatusCode, CasesPage) {
    let mut shown = CasesPage {
        layout: Layout::new(console, "Casussen", "casussen", person),
        csrf: key.token(console, person, OFFER),
        today: chrono::Utc::now().date_naive().to_string(),
        rows: Vec::new(),
        recorded: None,
        problem: None,
    };
    match console
        .node
        .get::<CaseList>("/v1/cases?openOnly=true", &person.name)
        .await
    {
        Ok(list) => {
            shown.rows = list
                .cases
                .iter()
                .enumerate()
                .map(|(i, c)| Row::new(i, c))
                .collect();
            (StatusCode::OK, shown)
        }
        Err(e) => {
            shown.problem = Some(e.to_string());
            (StatusCode::BAD_GATEWAY, shown)
        }
    }
}

/// `GET /casussen`: the open cases, each with its care-offer form.
pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
) -> Response {
    let (status, shown) = page(&console, &person, &key).await;
    render(status, &shown)
}

/// `POST /casussen/zorgaanbod`: records the care offer, after the CSRF check.
pub async fn record_offer(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(form): Form<OfferForm>,
) -> Response {
    if let Err(refused) = check_form(&console, &headers, &person, OFFER, &form.csrf) {
        return *refused;
    }
    let outcome = send_offer(&console, &person, &form).await;
    let (status, mut shown) = page(&console, &person, &key).await;
    match outcome {
        Ok(recorded) => {
            shown.recorded = Some(recorded);
            render(status, &shown)
        }
        Err(problem) => {
            shown.problem = Some(problem);
            render(StatusCode::UNPROCESSABLE_ENTITY, &shown)
        }
    }
}

/// Sends the offer to the node; what the page says of it, or the refusal.
async fn send_offer(
    console: &Console,
    person: &Person,
    form: &OfferForm,
) -> Result<String, String> {
    let case_id = form.casus.trim();
    // Only a case id goes into the path (never anything a person typed that could be a BSN).
    if !crate::cases::is_case_id(case_id) {
        return Err("kies een casus uit de lijst".into());
    }
    let kind = match form.soort.as_str() {
        "zorg" => CareOfferKind::Zorg,
        "onderwijs-en-zorg" => CareOfferKind::OnderwijsEnZorg,
        _ => return Err("kies wat er wordt geboden: zorg, of onderwijs en zorg".into()),
    };
    let request = RecordOfferRequest {
        pupil_pseudonym: form.leerling.trim().to_owned(),
        kind: Some(kind),
        offered_on: form.gedaan_op.trim().to_owned(),
        place_from: form.plek_vanaf.trim().to_owned(),
        parents_agreed: form.ouders == "ja",
        actor: person.name.clone(),
    };
    let answer = console
        .node
        .post::<_, OfferResponse>(
            &format!("/v1/cases/{case_id}/offers"),
            &person.name,
            &request,
        )
        .await
        .map_err(|e| e.to_string())?;
    let offer = &answer.offer;
    let clock = match offer.stops_clock_from {
        Some(day) => format!("het stopt de klok vanaf {}", day.format("%d-%m-%Y")),
        None => "het stopt de klok (nog) niet: geen plek of geen instemming van de ouders".into(),
    };
    let mut said = format!(
        "Zorgaanbod vastgelegd in casus {} voor leerling {}; {clock}.",
        offer.case_id, offer.pupil_pseudonym
    );
    if !answer.not_notified.is_empty() {
        let names: Vec<&str> = answer
            .not_notified
            .iter()
            .map(|f| f.peer.as_str())
            .collect();
        said.push_str(&format!(" Nog niet gehoord door: {}.", names.join(", ")));
    }
    Ok(said)
}
