//! `/v1/cases`: cases of case meetings at the node's own organisation: open, list, close, accept
//! and decline, and care offers recorded in them. The service layer decides (against the policy), rate-limits, audits and tells the
//! participants' nodes (over gRPC); here only JSON goes to and from its types. A case id means
//! nothing outside the node; pupils appear by pseudonym, in bodies only.

use super::problem::{Json, Path, Problem, Query};
use super::{Authenticated, RestState};
use crate::rpc::cases::GrpcCaseNotifier;
use crate::service::{parse_ids, CaseOutcome, NewOffer, OpenCase};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Een nieuwe casus van een casusoverleg, met de eigen organisatie als regievoerder.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenCaseRequest {
    /// Het soort casusoverleg (id in het beleid).
    #[serde(default)]
    #[schema(required = true, example = "aoj-team-vo")]
    pub meeting_type: String,
    /// Het doel (id in het beleid); moet een doel van het overleg zijn.
    #[serde(default)]
    #[schema(required = true)]
    pub purpose: String,
    /// Wie er handelt (voor het auditlog; nooit een leerlingnummer).
    #[serde(default)]
    pub actor: String,
    /// De leerlingen van de casus, op pseudoniem.
    #[serde(default)]
    #[schema(required = true)]
    pub pupil_pseudonyms: Vec<String>,
    /// De OIN's van de deelnemende organisaties.
    #[serde(default)]
    #[schema(required = true)]
    pub participant_oins: Vec<String>,
}

/// Wie er handelt bij sluiten, accepteren of weigeren (voor het auditlog).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaseAction {
    #[serde(default)]
    pub actor: String,
}

/// Een organisatie zoals een casus haar noemt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Party {
    /// De OIN (20 cijfers).
    pub oin: String,
    pub name: String,
}

/// Of de eigen organisatie meedoet aan een casus die met haar is gedeeld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaseAcceptance {
    /// Gedeeld, nog niet beoordeeld: geeft (meestal) nog geen toegang.
    Pending,
    /// Geaccepteerd (of geopend als regievoerder).
    Accepted,
    /// Geweigerd: geeft nooit toegang.
    Declined,
}

/// Een casus.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Case {
    /// Het casus-id: betekent niets buiten de knooppunten.
    pub id: String,
    pub meeting_type: String,
    pub purpose: String,
    /// De leerlingen, op pseudoniem.
    pub pupil_pseudonyms: Vec<String>,
    pub participants: Vec<Party>,
    /// De regievoerder.
    pub lead: Party,
    pub open: bool,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub acceptance: CaseAcceptance,
}

/// Een casus na openen of sluiten, en de deelnemers wier knooppunt het niet kon horen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaseResponse {
    pub case: Case,
    pub not_notified: Vec<super::federation::PeerFailure>,
}

/// De casussen van dit knooppunt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CaseList {
    pub cases: Vec<Case>,
}

/// Welke casussen.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// Alleen open casussen.
    pub open_only: Option<bool>,
}

fn party(p: crate::cases::Party) -> Party {
    Party {
        oin: p.oin.into_string(),
        name: p.name,
    }
}

impl From<crate::cases::Case> for Case {
    fn from(c: crate::cases::Case) -> Self {
        use crate::cases::Acceptance as A;
        Self {
            id: c.id,
            meeting_type: c.meeting_type,
            purpose: c.purpose,
            pupil_pseudonyms: c.pupils.into_iter().map(String::from).collect(),
            participants: c.participants.into_iter().map(party).collect(),
            lead: party(c.lead),
            open: c.open,
            opened_at: c.opened_at,
            closed_at: c.closed_at,
            acceptance: match c.acceptance {
                A::Pending => CaseAcceptance::Pending,
                A::Accepted => CaseAcceptance::Accepted,
                A::Declined => CaseAcceptance::Declined,
            },
        }
    }
}

fn outcome(o: CaseOutcome) -> CaseResponse {
    CaseResponse {
        case: o.case.into(),
        not_notified: o
            .not_notified
            .into_iter()
            .map(|f| super::federation::PeerFailure {
                peer: f.peer,
                code: f.code,
                message: f.message,
            })
            .collect(),
    }
}

fn notifier(state: &RestState) -> GrpcCaseNotifier<'_> {
    let node = state.service.node();
    GrpcCaseNotifier {
        peers: &node.peers,
        own_oin: &node.own.oin,
    }
}

/// A case id from the path, refused (never echoed) if it could carry a pupil id.
fn case_id(id: &str) -> Result<&str, Problem> {
    crate::service::refuse_id_like_case_id("caseId", id)?;
    Ok(id)
}

/// Een casus openen.
///
/// De eigen organisatie opent als regievoerder een casus van een casusoverleg; het beleid
/// bepaalt of dat mag en wie mogen deelnemen. De casus wordt gedeeld met het knooppunt van
/// elke deelnemer.
#[utoipa::path(
    post,
    path = "/cases",
    operation_id = "openCase",
    tag = "casussen",
    request_body = OpenCaseRequest,
    responses(
        (status = 201, description = "Geopend.", body = CaseResponse),
        (status = 400, description = "Een veld klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Het beleid staat deze casus niet toe, of de vrager is niet \
         de eigen organisatie.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Het knooppunt heeft geen beleid.",
         body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Te veel casussen in korte tijd.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn open(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<OpenCaseRequest>,
) -> Result<(StatusCode, Json<CaseResponse>), Problem> {
    let request = OpenCase {
        meeting_type: request.meeting_type,
        purpose: request.purpose,
        actor: request.actor,
        pupil_pseudonyms: parse_ids("pupil_pseudonyms", &request.pupil_pseudonyms)?,
        participant_oins: parse_ids("participant_oins", &request.participant_oins)?,
    };
    let opened = state
        .service
        .open_case(&caller, request, &notifier(&state))
        .await?;
    Ok((StatusCode::CREATED, Json(outcome(opened))))
}

/// Casussen opvragen.
#[utoipa::path(
    get,
    path = "/cases",
    operation_id = "listCases",
    tag = "casussen",
    params(CaseQuery),
    responses(
        (status = 200, description = "De casussen van dit knooppunt.", body = CaseList),
        (status = 400, description = "Een query-parameter klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<CaseQuery>,
) -> Result<Json<CaseList>, Problem> {
    let cases = state
        .service
        .list_cases(&caller, query.open_only.unwrap_or(false))
        .await?;
    Ok(Json(CaseList {
        cases: cases.into_iter().map(Case::from).collect(),
    }))
}

/// Een casus sluiten.
///
/// Alleen de regievoerder sluit; de knooppunten van de deelnemers horen het.
#[utoipa::path(
    post,
    path = "/cases/{caseId}/close",
    operation_id = "closeCase",
    tag = "casussen",
    params(("caseId" = String, Path, description = "Het casus-id.")),
    request_body = CaseAction,
    responses(
        (status = 200, description = "Gesloten.", body = CaseResponse),
        (status = 400, description = "Het casus-id of de body klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de regievoerder sluit een casus.",
         body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "De casus is hier niet bekend.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn close(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(action): Json<CaseAction>,
) -> Result<Json<CaseResponse>, Problem> {
    let closed = state
        .service
        .close_case(&caller, case_id(&id)?, &action.actor, &notifier(&state))
        .await?;
    Ok(Json(outcome(closed)))
}

async fn answer(
    state: &RestState,
    caller: &crate::service::Caller,
    id: &str,
    actor: &str,
    accept: bool,
) -> Result<Json<Case>, Problem> {
    let case = state
        .service
        .answer_case(caller, case_id(id)?, actor, accept)
        .await?;
    Ok(Json(case.into()))
}

/// Een gedeelde casus accepteren.
#[utoipa::path(
    post,
    path = "/cases/{caseId}/accept",
    operation_id = "acceptCase",
    tag = "casussen",
    params(("caseId" = String, Path, description = "Het casus-id.")),
    request_body = CaseAction,
    responses(
        (status = 200, description = "Geaccepteerd.", body = Case),
        (status = 400, description = "Het casus-id of de body klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "De casus is hier niet bekend.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "De casus is gesloten of al beslist.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn accept(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(action): Json<CaseAction>,
) -> Result<Json<Case>, Problem> {
    answer(&state, &caller, &id, &action.actor, true).await
}

/// Een gedeelde casus weigeren.
#[utoipa::path(
    post,
    path = "/cases/{caseId}/decline",
    operation_id = "declineCase",
    tag = "casussen",
    params(("caseId" = String, Path, description = "Het casus-id.")),
    request_body = CaseAction,
    responses(
        (status = 200, description = "Geweigerd.", body = Case),
        (status = 400, description = "Het casus-id of de body klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "De casus is hier niet bekend.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "De casus is gesloten of al beslist.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn decline(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(action): Json<CaseAction>,
) -> Result<Json<Case>, Problem> {
    answer(&state, &caller, &id, &action.actor, false).await
}

/// Wat een zorgaanbod biedt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CareOfferKind {
    /// Zorg (jeugdhulp, WIJ-ondersteuning, behandeling).
    Zorg,
    /// Onderwijs en zorg samen.
    OnderwijsEnZorg,
}

/// Een zorgaanbod voor een leerling van een casus, vastgelegd door de eigen organisatie (waar
/// het overleg dat haar soort organisatie toestaat: `may_record_offer`).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordOfferRequest {
    /// De leerling, op pseudoniem (een leerling van de casus).
    #[serde(default)]
    #[schema(required = true)]
    pub pupil_pseudonym: String,
    /// Wat er wordt geboden.
    #[schema(required = true)]
    pub kind: Option<CareOfferKind>,
    /// De dag waarop het aanbod is gedaan (JJJJ-MM-DD).
    #[serde(default)]
    #[schema(required = true, example = "2026-11-20")]
    pub offered_on: String,
    /// De eerste dag waarop de plek er echt is (JJJJ-MM-DD); weglaten bij een wachtlijst (dan
    /// loopt de klok door).
    #[serde(default)]
    pub place_from: String,
    /// Het aanbod is afgestemd met de ouders (en het kind).
    #[serde(default)]
    pub parents_agreed: bool,
    /// Wie er handelt (voor het auditlog; nooit een leerlingnummer).
    #[serde(default)]
    pub actor: String,
}

/// Een vastgelegd zorgaanbod.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CareOffer {
    pub case_id: String,
    pub pupil_pseudonym: String,
    /// ZORG of ONDERWIJS_EN_ZORG.
    pub kind: String,
    pub offered_on: chrono::NaiveDate,
    /// Ontbreekt bij een wachtlijst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place_from: Option<chrono::NaiveDate>,
    pub parents_agreed: bool,
    /// De organisatie die het vastlegde.
    pub recorded_by: Party,
    /// De eerste dag waarop het aanbod de klok stopt; ontbreekt als het dat (nog) niet doet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stops_clock_from: Option<chrono::NaiveDate>,
}

/// Een zorgaanbod na vastleggen, en de deelnemers wier knooppunt het niet kon horen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferResponse {
    pub offer: CareOffer,
    pub not_notified: Vec<super::federation::PeerFailure>,
}

impl From<crate::cases::CareOffer> for CareOffer {
    fn from(o: crate::cases::CareOffer) -> Self {
        Self {
            stops_clock_from: o.stops_clock_from(),
            case_id: o.case_id,
            pupil_pseudonym: o.pupil.into_string(),
            kind: o.kind.code().to_owned(),
            offered_on: o.offered_on,
            place_from: o.place_from,
            parents_agreed: o.parents_agreed,
            recorded_by: party(o.by),
        }
    }
}

/// Een zorgaanbod vastleggen.
///
/// De eigen organisatie (bijvoorbeeld WIJ of jeugdhulp) legt een zorgaanbod vast voor een
/// leerling van een casus waaraan zij deelneemt, als het casusoverleg dat haar soort organisatie
/// toestaat. De knooppunten van de andere deelnemers horen het. Het aanbod stopt de klok van de
/// leerling alleen met een beschikbare plek en instemming van de ouders; een wachtlijst niet.
#[utoipa::path(
    post,
    path = "/cases/{caseId}/offers",
    operation_id = "recordCareOffer",
    tag = "casussen",
    params(("caseId" = String, Path, description = "Het casus-id.")),
    request_body = RecordOfferRequest,
    responses(
        (status = 201, description = "Vastgelegd.", body = OfferResponse),
        (status = 400, description = "Een veld klopt niet (bijvoorbeeld een leerling buiten de \
         casus, of alleen onderwijs).",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Het overleg staat deze organisatie geen zorgaanbod toe, \
         of de vrager is niet de eigen organisatie.",
         body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "De casus is hier niet bekend.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "De casus is gesloten, geweigerd of nog niet geaccepteerd.",
         body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Te veel in korte tijd.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn record_offer(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(request): Json<RecordOfferRequest>,
) -> Result<(StatusCode, Json<OfferResponse>), Problem> {
    let offer = NewOffer {
        case_id: case_id(&id)?.to_owned(),
        pupil_pseudonym: request.pupil_pseudonym,
        kind: request.kind.map(|k| match k {
            CareOfferKind::Zorg => crate::signal::OfferKind::Zorg,
            CareOfferKind::OnderwijsEnZorg => crate::signal::OfferKind::OnderwijsEnZorg,
        }),
        offered_on: request.offered_on,
        place_from: request.place_from,
        parents_agreed: request.parents_agreed,
    };
    let recorded = state
        .service
        .record_offer(&caller, offer, &request.actor, &notifier(&state))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(OfferResponse {
            offer: recorded.offer.into(),
            not_notified: recorded
                .not_notified
                .into_iter()
                .map(|f| super::federation::PeerFailure {
                    peer: f.peer,
                    code: f.code,
                    message: f.message,
                })
                .collect(),
        }),
    ))
}

/// De casussen en zorgaanbiedingen van één leerling: het pseudoniem staat in de body.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PupilCasesRequest {
    #[serde(default)]
    #[schema(required = true)]
    pub pupil_pseudonym: String,
}

/// De casussen (open en gesloten) en zorgaanbiedingen van één leerling op dit knooppunt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PupilCases {
    pub cases: Vec<Case>,
    pub offers: Vec<CareOffer>,
}

/// Casussen en zorgaanbod van één leerling.
///
/// Alle casussen die dit knooppunt houdt waarin de leerling staat, en de zorgaanbiedingen
/// daarin (niet die van een geweigerde casus). Komt in het auditlog met wie er handelt.
#[utoipa::path(
    post,
    path = "/cases/search",
    operation_id = "searchCases",
    tag = "casussen",
    request_body = PupilCasesRequest,
    responses(
        (status = 200, description = "De casussen en het zorgaanbod.", body = PupilCases),
        (status = 400, description = "Geen pseudoniem.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<PupilCasesRequest>,
) -> Result<Json<PupilCases>, Problem> {
    let pupil = crate::ids::Pseudonym::parse_field(&request.pupil_pseudonym, "pupilPseudonym")
        .map_err(|e| Problem::invalid("pupilPseudonym", e.reason()))?;
    let found = state.service.pupil_cases(&caller, &pupil).await?;
    Ok(Json(PupilCases {
        cases: found.cases.into_iter().map(Case::from).collect(),
        offers: found.offers.into_iter().map(CareOffer::from).collect(),
    }))
}

/// Een categorie gegevens, of een grondslag: id en naam.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// Een zetel aan een casusoverleg.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Seat {
    /// Het soort organisatie (gemeente, swv, wij, ...).
    pub org_type: String,
    pub role: String,
    pub legal_bases: Vec<Named>,
    pub purposes: Vec<String>,
    /// De categorieën gegevens die deze zetel mag zien.
    pub data_categories: Vec<Named>,
}

/// Een deelnemer die een zetel kan nemen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatParty {
    pub oin: String,
    pub name: String,
    pub org_type: String,
}

/// Een casusoverleg uit het beleid (Bijlage 3).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaseMeeting {
    pub id: String,
    pub name: String,
    pub purposes: Vec<Named>,
    /// Of de eigen organisatie er een casus van mag openen.
    pub may_lead: bool,
    /// Of een deelnemer eerst moet accepteren.
    pub needs_acceptance: bool,
    pub max_pupils: u32,
    pub seats: Vec<Seat>,
    /// De soorten organisaties die er zorgaanbod in mogen vastleggen.
    pub may_record_offer: Vec<String>,
    /// De partijen van het convenant met een zetel.
    pub parties: Vec<SeatParty>,
}

/// De casusoverleggen van het beleid.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CaseMeetings {
    pub meetings: Vec<CaseMeeting>,
}

fn named(pairs: Vec<(String, String)>) -> Vec<Named> {
    pairs
        .into_iter()
        .map(|(id, name)| Named { id, name })
        .collect()
}

impl From<crate::service::cases::MeetingChoice> for CaseMeeting {
    fn from(m: crate::service::cases::MeetingChoice) -> Self {
        Self {
            id: m.id,
            name: m.name,
            purposes: named(m.purposes),
            may_lead: m.may_lead,
            needs_acceptance: m.needs_acceptance,
            max_pupils: u32::try_from(m.max_pupils).unwrap_or(u32::MAX),
            seats: m
                .seats
                .into_iter()
                .map(|s| Seat {
                    org_type: s.org_type,
                    role: s.role,
                    legal_bases: named(s.legal_bases),
                    purposes: s.purposes,
                    data_categories: named(s.data_categories),
                })
                .collect(),
            may_record_offer: m.may_record_offer,
            parties: m
                .parties
                .into_iter()
                .map(|(p, org_type)| SeatParty {
                    oin: p.oin.to_string(),
                    name: p.name,
                    org_type,
                })
                .collect(),
        }
    }
}

/// De casusoverleggen van het beleid.
///
/// Elk casusoverleg met zijn doelen, zetels (rol, grondslagen, doelen en de categorieën
/// gegevens die de zetel mag zien) en de partijen die een zetel kunnen nemen: de keuzes van
/// het formulier dat een casus opent.
#[utoipa::path(
    get,
    path = "/case-meetings",
    operation_id = "listCaseMeetings",
    tag = "casussen",
    responses(
        (status = 200, description = "De casusoverleggen.", body = CaseMeetings),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Het knooppunt heeft geen beleid.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn meetings(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<CaseMeetings>, Problem> {
    let meetings = state.service.case_meetings(&caller)?;
    Ok(Json(CaseMeetings {
        meetings: meetings.into_iter().map(CaseMeeting::from).collect(),
    }))
}
