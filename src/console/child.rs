//! A child's page (`/leerling/{pseudoniem}`): where it stands on the clock (`POST /v1/due-list`),
//! what each partner may show about it (`POST /v1/federated-queries`, the Navragen question),
//! and its cases and care offers at the node (`POST /v1/cases/search`); and the look-up by BSN
//! (`POST /leerling`, CSRF): the node pseudonymises the number (`POST /v1/pupil-lookups`) and
//! the answer is a redirect to the child's page by pseudonym. The BSN is never put in a URL, a
//! log line or a page, and is dropped once sent on.

use super::pages::{check_form, refusal, render, FormKey, Layout};
use super::person::Person;
use super::query::{shown, ClaimForm, Row as SignalRow};
use super::Console;
use crate::ids::Pseudonym;
use crate::rest::cases::PupilCases;
use crate::rest::clock::{DueList, DueRequest, PupilLookup, PupilLookupRequest};
use crate::rest::federation::{FederatedQueryRequest, FederatedQueryResponse, QueryFilter};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use std::sync::Arc;

/// Where the look-up form posts.
pub const LOOKUP: &str = "/leerling";
/// The child's page, by pseudonym.
pub const PAGE: &str = "/leerling/{pseudonym}";

/// The look-up form, as sent. The number is kept out of `Debug`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct LookupForm {
    pub csrf: String,
    pub bsn: String,
}

impl std::fmt::Debug for LookupForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupForm").finish_non_exhaustive()
    }
}

/// The child on the clock, as the page shows it.
pub struct ClockLine {
    pub band: String,
    pub weeks: u32,
    pub days: i64,
    pub step: String,
    pub holders: String,
}

/// What one partner shared about the child.
pub struct PartnerView {
    pub holder: String,
    pub rule: String,
    pub rows: Vec<SignalRow>,
}

/// A case of the child.
pub struct CaseLine {
    pub id: String,
    pub meeting: String,
    pub purpose: String,
    pub lead: String,
    pub state: String,
}

/// A care offer for the child.
pub struct OfferLine {
    pub case_id: String,
    pub kind: String,
    pub by: String,
    pub offered_on: String,
    pub place_from: String,
    pub stops_clock: String,
}

#[derive(Template)]
#[template(path = "console/leerling.html")]
struct ChildPage {
    layout: Layout,
    pseudonym: String,
    at: String,
    clock: Option<ClockLine>,
    partners: Vec<PartnerView>,
    silent: Vec<String>,
    cases: Vec<CaseLine>,
    offers: Vec<OfferLine>,
    problems: Vec<String>,
}

/// `POST /leerling`: the BSN look-up, after the CSRF check; a redirect to the child's page.
pub async fn look_up(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    headers: HeaderMap,
    Form(mut form): Form<LookupForm>,
) -> Response {
    if let Err(refused) = check_form(&console, &headers, &person, LOOKUP, &form.csrf) {
        zeroize::Zeroize::zeroize(&mut form.bsn);
        return *refused;
    }
    let mut request = PupilLookupRequest {
        pupil_id: form.bsn.trim().to_owned(),
    };
    zeroize::Zeroize::zeroize(&mut form.bsn);
    let answer = console
        .node
        .post::<_, PupilLookup>("/v1/pupil-lookups", &person.name, &request)
        .await;
    zeroize::Zeroize::zeroize(&mut request.pupil_id);
    match answer {
        Ok(found) => match Pseudonym::parse_field(&found.pupil_pseudonym, "pupil_pseudonym") {
            Ok(p) => (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/leerling/{p}"))],
            )
                .into_response(),
            Err(_) => refusal(
                StatusCode::BAD_GATEWAY,
                "Leerling niet gevonden",
                "De node gaf geen pseudoniem terug.",
            ),
        },
        Err(e) => refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Leerling niet opgezocht",
            &format!(
                "De node weigerde het opzoeken: {}",
                crate::pseudonym::withhold_ids(&e.to_string())
            ),
        ),
    }
}

/// `GET /leerling/{pseudoniem}`: the child's page.
pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(_key): Extension<FormKey>,
    Path(text): Path<String>,
) -> Response {
    let Ok(pupil) = Pseudonym::parse_field(&text, "pupil_pseudonym") else {
        return refusal(
            StatusCode::NOT_FOUND,
            "Leerling niet gevonden",
            "Dit is geen pseudoniem van een leerling. Kies een leerling op de Signaleringslijst.",
        );
    };
    let due_request = DueRequest {
        claim: Some(ClaimForm::default().claim(&person)),
        at: None,
        timeout_ms: 0,
    };
    let query_request = FederatedQueryRequest {
        claim: ClaimForm::default().claim(&person),
        filter: QueryFilter::default(),
        timeout_ms: 0,
    };
    let cases_request = crate::rest::cases::PupilCasesRequest {
        pupil_pseudonym: pupil.to_string(),
    };
    let (due, query, cases) = tokio::join!(
        console
            .node
            .post::<_, DueList>("/v1/due-list", &person.name, &due_request),
        console.node.post::<_, FederatedQueryResponse>(
            "/v1/federated-queries",
            &person.name,
            &query_request
        ),
        console
            .node
            .post::<_, PupilCases>("/v1/cases/search", &person.name, &cases_request),
    );
    let mut shown_page = ChildPage {
        layout: Layout::new(&console, "Leerling", "signaleringslijst", &person),
        pseudonym: pupil.to_string(),
        at: String::new(),
        clock: None,
        partners: Vec::new(),
        silent: Vec::new(),
        cases: Vec::new(),
        offers: Vec::new(),
        problems: Vec::new(),
    };
    let p = pupil.to_string();
    match due {
        Ok(list) => {
            shown_page.at = list.at.format("%d-%m-%Y").to_string();
            shown_page.clock = list.lines.iter().find(|l| l.pupil_pseudonym == p).map(|l| {
                let row = super::due::Row::from(l);
                ClockLine {
                    band: row.band,
                    weeks: l.weeks,
                    days: l.days,
                    step: row.step,
                    holders: row.holders,
                }
            });
        }
        Err(e) => shown_page.problems.push(format!("De klok: {e}")),
    }
    match query {
        Ok(answer) => {
            for a in &answer.answers {
                let rows: Vec<SignalRow> = a
                    .signals
                    .iter()
                    .filter(|s| s.pupil_pseudonym.as_deref() == Some(p.as_str()))
                    .map(SignalRow::from)
                    .collect();
                if rows.is_empty() {
                    shown_page.silent.push(a.holder_name.clone());
                } else {
                    shown_page.partners.push(PartnerView {
                        holder: a.holder_name.clone(),
                        rule: a.rule.clone(),
                        rows,
                    });
                }
            }
            shown_page.silent.extend(
                answer
                    .failures
                    .iter()
                    .map(|f| format!("{} ({})", f.peer, f.message)),
            );
        }
        Err(e) => shown_page.problems.push(format!("De partners: {e}")),
    }
    match cases {
        Ok(found) => {
            shown_page.cases = found
                .cases
                .iter()
                .map(|c| CaseLine {
                    id: c.id.clone(),
                    meeting: c.meeting_type.clone(),
                    purpose: c.purpose.clone(),
                    lead: c.lead.name.clone(),
                    state: if c.open { "open" } else { "gesloten" }.to_owned(),
                })
                .collect();
            shown_page.offers = found
                .offers
                .iter()
                .map(|o| OfferLine {
                    case_id: o.case_id.clone(),
                    kind: match o.kind.as_str() {
                        "ONDERWIJS_EN_ZORG" => "onderwijs en zorg",
                        _ => "zorg",
                    }
                    .to_owned(),
                    by: o.recorded_by.name.clone(),
                    offered_on: o.offered_on.format("%d-%m-%Y").to_string(),
                    place_from: shown(o.place_from.map(|d| d.format("%d-%m-%Y").to_string()))
                        .replace("niet gedeeld", "wachtlijst"),
                    stops_clock: match o.stops_clock_from {
                        Some(d) => format!("vanaf {}", d.format("%d-%m-%Y")),
                        None => "nee".into(),
                    },
                })
                .collect();
        }
        Err(e) => shown_page.problems.push(format!("De casussen: {e}")),
    }
    let status = if shown_page.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    render(status, &shown_page)
}
