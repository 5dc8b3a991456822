//! The Casussen page: the open cases of the organisation's node (`GET /v1/cases`) with, per
//! participant, the data categories the covenant lets it see (`GET /v1/case-meetings`); the forms
//! "Casus openen" (`POST /v1/cases`, pupils by BSN pseudonymised by the node through
//! `POST /v1/pupil-lookups`, or by pseudonym from a child's page), "Accepteren"/"Weigeren"
//! (`/accept`, `/decline`), "Casus sluiten" (`/close`) and "Zorgaanbod vastleggen"
//! (`POST /v1/cases/{caseId}/offers`), the person as the actor. POST forms with a CSRF token;
//! the node decides, audits and tells the other participants. Pupils appear by pseudonym only;
//! a BSN typed in the form is never shown, logged or put in a URL.

use super::pages::{check_form, render, FormKey, Layout};
use super::person::Person;
use super::Console;
use crate::rest::cases::{
    CareOfferKind, Case, CaseAction, CaseList, CaseMeeting, CaseMeetings, CaseResponse,
    OfferResponse, OpenCaseRequest, RecordOfferRequest,
};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use std::sync::Arc;

/// The page.
pub const PAGE: &str = "/casussen";
/// Where the care-offer forms post.
pub const OFFER: &str = "/casussen/zorgaanbod";
/// Where the form that opens a case posts.
pub const OPEN: &str = "/casussen/openen";
/// Where a participant accepts or declines a case.
pub const DECIDE: &str = "/casussen/beslissen";
/// Where the lead closes a case.
pub const CLOSE: &str = "/casussen/sluiten";

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
    /// This node's organisation leads the case: it may close it.
    pub lead_here: bool,
    /// Shared here and not yet accepted or declined.
    pub pending: bool,
    /// Per party of the case: name, seat(s) and what the covenant lets it see.
    pub seats: Vec<SeatLine>,
}

/// A party of a case and what its seat lets it see.
pub struct SeatLine {
    pub party: String,
    pub roles: String,
    pub categories: String,
}

/// The seats of `oin` at `meeting`: its roles and the data categories they let it see.
fn seat_line(meeting: Option<&CaseMeeting>, oin: &str, name: &str) -> SeatLine {
    let org_type = meeting.and_then(|m| m.parties.iter().find(|p| p.oin == oin));
    let seats: Vec<_> = match (meeting, org_type) {
        (Some(m), Some(p)) => m
            .seats
            .iter()
            .filter(|s| s.org_type == p.org_type)
            .collect(),
        _ => Vec::new(),
    };
    let mut categories: Vec<&str> = seats
        .iter()
        .flat_map(|s| s.data_categories.iter().map(|d| d.name.as_str()))
        .collect();
    categories.dedup();
    SeatLine {
        party: name.to_owned(),
        roles: seats
            .iter()
            .map(|s| s.role.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        categories: if categories.is_empty() {
            "niets (geen zetel in het convenant)".into()
        } else {
            categories.join(", ")
        },
    }
}

impl Row {
    fn new(i: usize, c: &Case, own_oin: &str, meetings: &[CaseMeeting]) -> Self {
        use crate::rest::cases::CaseAcceptance as A;
        let meeting = meetings.iter().find(|m| m.id == c.meeting_type);
        let seats = std::iter::once(&c.lead)
            .chain(&c.participants)
            .map(|p| seat_line(meeting, &p.oin, &p.name))
            .collect();
        Self {
            lead_here: c.lead.oin == own_oin,
            pending: c.acceptance == A::Pending && c.lead.oin != own_oin,
            seats,
            id: c.id.clone(),
            form_id: format!("zorgaanbod-{i}"),
            meeting: meeting.map_or_else(|| c.meeting_type.clone(), |m| m.name.clone()),
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
    open_csrf: String,
    decide_csrf: String,
    close_csrf: String,
    today: String,
    rows: Vec<Row>,
    /// The meetings this organisation may open a case of.
    meetings: Vec<MeetingOption>,
    /// The parties that may take a seat at one of them (not this organisation).
    parties: Vec<PartyOption>,
    /// A pupil by pseudonym, from a child's page.
    pupil: String,
    recorded: Option<String>,
    problem: Option<String>,
}

/// A meeting in the form that opens a case, with its seats.
pub struct MeetingOption {
    pub id: String,
    pub name: String,
    pub purposes: Vec<(String, String)>,
    pub max_pupils: u32,
    pub needs_acceptance: bool,
    pub seats: Vec<SeatOption>,
}

/// A seat of a meeting, as the form shows it.
pub struct SeatOption {
    pub org_type: String,
    pub role: String,
    pub bases: String,
    pub purposes: String,
    pub categories: String,
}

/// A party that may be asked to take part.
pub struct PartyOption {
    pub oin: String,
    pub label: String,
    pub field_id: String,
}

fn names(list: &[crate::rest::cases::Named]) -> String {
    list.iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn meeting_option(m: &CaseMeeting) -> MeetingOption {
    MeetingOption {
        id: m.id.clone(),
        name: m.name.clone(),
        purposes: m
            .purposes
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect(),
        max_pupils: m.max_pupils,
        needs_acceptance: m.needs_acceptance,
        seats: m
            .seats
            .iter()
            .map(|s| SeatOption {
                org_type: s.org_type.clone(),
                role: s.role.clone(),
                bases: names(&s.legal_bases),
                purposes: s.purposes.join(", "),
                categories: names(&s.data_categories),
            })
            .collect(),
    }
}

/// The parties with a seat at a meeting this organisation may lead (itself left out).
fn party_options(meetings: &[CaseMeeting], own_oin: &str) -> Vec<PartyOption> {
    let mut out: Vec<PartyOption> = Vec::new();
    for p in meetings
        .iter()
        .filter(|m| m.may_lead)
        .flat_map(|m| &m.parties)
    {
        if p.oin == own_oin || out.iter().any(|o| o.oin == p.oin) {
            continue;
        }
        out.push(PartyOption {
            field_id: format!("deelnemer-{}", out.len()),
            oin: p.oin.clone(),
            label: format!("{} ({})", p.name, p.org_type),
        });
    }
    out
}

/// The page with the node's open cases (or why they cannot be shown).
async fn page(console: &Console, person: &Person, key: &FormKey) -> (StatusCode, CasesPage) {
    let mut shown = CasesPage {
        layout: Layout::new(console, "Casussen", "casussen", person),
        csrf: key.token(console, person, OFFER),
        open_csrf: key.token(console, person, OPEN),
        decide_csrf: key.token(console, person, DECIDE),
        close_csrf: key.token(console, person, CLOSE),
        today: chrono::Utc::now().date_naive().to_string(),
        rows: Vec::new(),
        meetings: Vec::new(),
        parties: Vec::new(),
        pupil: String::new(),
        recorded: None,
        problem: None,
    };
    let (cases, meetings) = tokio::join!(
        console
            .node
            .get::<CaseList>("/v1/cases?openOnly=true", &person.name),
        console
            .node
            .get::<CaseMeetings>("/v1/case-meetings", &person.name),
    );
    let own = console.own.oin.to_string();
    let meetings = match meetings {
        Ok(m) => m.meetings,
        Err(e) => {
            shown.problem = Some(e.to_string());
            return (StatusCode::BAD_GATEWAY, shown);
        }
    };
    shown.meetings = meetings
        .iter()
        .filter(|m| m.may_lead)
        .map(meeting_option)
        .collect();
    shown.parties = party_options(&meetings, &own);
    match cases {
        Ok(list) => {
            shown.rows = list
                .cases
                .iter()
                .enumerate()
                .map(|(i, c)| Row::new(i, c, &own, &meetings))
                .collect();
            (StatusCode::OK, shown)
        }
        Err(e) => {
            shown.problem = Some(e.to_string());
            (StatusCode::BAD_GATEWAY, shown)
        }
    }
}

/// Which pupil the form that opens a case starts with (from a child's page).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ListQuery {
    pub leerling: String,
}

/// `GET /casussen`: the open cases, each with its forms, and the form that opens one.
pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    Query(query): Query<ListQuery>,
) -> Response {
    let (status, mut shown) = page(&console, &person, &key).await;
    if crate::pseudonym::is_pseudonym(query.leerling.trim()) {
        shown.pupil = query.leerling.trim().to_owned();
    }
    render(status, &shown)
}

/// What the node refused, with anything that could be a pupil id withheld.
fn refused(e: &super::node_api::NodeApiError) -> String {
    crate::pseudonym::withhold_ids_keeping_oins(&e.to_string()).into_owned()
}

/// Shows the page after a form: what was done, or the node's refusal.
async fn after(
    console: &Console,
    person: &Person,
    key: &FormKey,
    outcome: Result<String, String>,
) -> Response {
    let (status, mut shown) = page(console, person, key).await;
    match outcome {
        Ok(done) => {
            shown.recorded = Some(done);
            render(status, &shown)
        }
        Err(problem) => {
            shown.problem = Some(problem);
            render(StatusCode::UNPROCESSABLE_ENTITY, &shown)
        }
    }
}

/// The form that opens a case, as sent: pairs, since participants repeat.
fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

/// `POST /casussen/openen`: opens a case led by this organisation, after the CSRF check.
pub async fn open(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(mut form): Form<Vec<(String, String)>>,
) -> Response {
    let token = field(&form, "csrf").to_owned();
    if let Err(refused) = check_form(&console, &headers, &person, OPEN, &token) {
        forget_bsn(&mut form);
        return *refused;
    }
    let outcome = open_case(&console, &person, &form).await;
    forget_bsn(&mut form);
    after(&console, &person, &key, outcome).await
}

/// Overwrites the BSN of a sent form.
fn forget_bsn(form: &mut [(String, String)]) {
    for (k, v) in form.iter_mut() {
        if k == "bsn" {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

async fn open_case(
    console: &Console,
    person: &Person,
    form: &[(String, String)],
) -> Result<String, String> {
    let (meeting, purpose) = field(form, "overleg_doel")
        .split_once(':')
        .ok_or("kies een overleg en een doel")?;
    let mut pupils = Vec::new();
    let pseudonym = field(form, "leerling");
    if !pseudonym.is_empty() {
        pupils.push(pseudonym.to_owned());
    }
    let bsn = field(form, "bsn");
    if !bsn.is_empty() {
        let mut lookup = crate::rest::clock::PupilLookupRequest {
            pupil_id: bsn.to_owned(),
        };
        let found = console
            .node
            .post::<_, crate::rest::clock::PupilLookup>("/v1/pupil-lookups", &person.name, &lookup)
            .await;
        zeroize::Zeroize::zeroize(&mut lookup.pupil_id);
        pupils.push(found.map_err(|e| refused(&e))?.pupil_pseudonym);
    }
    if pupils.is_empty() {
        return Err("noem een leerling: een BSN of onderwijsnummer, of kies een kind op de Signaleringslijst".into());
    }
    let request = OpenCaseRequest {
        meeting_type: meeting.to_owned(),
        purpose: purpose.to_owned(),
        actor: person.name.clone(),
        pupil_pseudonyms: pupils,
        participant_oins: form
            .iter()
            .filter(|(k, _)| k == "deelnemer")
            .map(|(_, v)| v.trim().to_owned())
            .collect(),
    };
    let opened = console
        .node
        .post::<_, CaseResponse>("/v1/cases", &person.name, &request)
        .await
        .map_err(|e| refused(&e))?;
    let case = &opened.case;
    let mut said = format!(
        "Casus {} geopend ({}, doel {}), gedeeld met {}.",
        case.id,
        case.meeting_type,
        case.purpose,
        case.participants
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    said.push_str(&not_heard(&opened.not_notified));
    Ok(said)
}

fn not_heard(failures: &[crate::rest::federation::PeerFailure]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = failures.iter().map(|f| f.peer.as_str()).collect();
    format!(" Nog niet gehoord door: {}.", names.join(", "))
}

/// The accept/decline and close forms, as sent.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct CaseForm {
    pub csrf: String,
    pub casus: String,
    /// "accepteren" or "weigeren".
    pub besluit: String,
}

/// Only a case id goes into a path.
fn case_path(id: &str, what: &str) -> Result<String, String> {
    if !crate::cases::is_case_id(id) {
        return Err("kies een casus uit de lijst".into());
    }
    Ok(format!("/v1/cases/{id}/{what}"))
}

/// `POST /casussen/beslissen`: accepts or declines a case shared here.
pub async fn decide(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(form): Form<CaseForm>,
) -> Response {
    case_form(&console, &person, &key, &headers, &form, DECIDE).await
}

/// `POST /casussen/sluiten`: the lead closes a case.
pub async fn close(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(form): Form<CaseForm>,
) -> Response {
    case_form(&console, &person, &key, &headers, &form, CLOSE).await
}

/// Checks the token of a form that posts to `action` ([`DECIDE`] or [`CLOSE`]), takes the
/// step at the node and shows the page after it.
async fn case_form(
    console: &Console,
    person: &Person,
    key: &FormKey,
    headers: &HeaderMap,
    form: &CaseForm,
    action: &'static str,
) -> Response {
    if let Err(refused) = check_form(console, headers, person, action, &form.csrf) {
        return *refused;
    }
    let outcome = case_step(console, person, form, action == CLOSE).await;
    after(console, person, key, outcome).await
}

/// Closes the case (`close`), or accepts or declines it as the form says; what the page says of
/// it, or the refusal.
async fn case_step(
    console: &Console,
    person: &Person,
    form: &CaseForm,
    close: bool,
) -> Result<String, String> {
    let id = form.casus.trim();
    let action = CaseAction {
        actor: person.name.clone(),
    };
    if close {
        let closed = console
            .node
            .post::<_, CaseResponse>(&case_path(id, "close")?, &person.name, &action)
            .await
            .map_err(|e| refused(&e))?;
        return Ok(format!(
            "Casus {} gesloten.{}",
            closed.case.id,
            not_heard(&closed.not_notified)
        ));
    }
    let (what, said) = match form.besluit.as_str() {
        "accepteren" => ("accept", "geaccepteerd"),
        "weigeren" => ("decline", "geweigerd"),
        _ => return Err("kies accepteren of weigeren".to_owned()),
    };
    let case = console
        .node
        .post::<_, Case>(&case_path(id, what)?, &person.name, &action)
        .await
        .map_err(|e| refused(&e))?;
    Ok(format!("Casus {} {said}.", case.id))
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
    after(&console, &person, &key, outcome).await
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
