//! `/v1/cases`: cases of case meetings at the node's own organisation: open, list, close, accept
//! and decline. The service layer decides (against the policy), rate-limits, audits and tells the
//! participants' nodes (over gRPC); here only JSON goes to and from its types. A case id means
//! nothing outside the node; pupils appear by pseudonym, in bodies only.

use super::problem::{Json, Path, Problem, Query};
use super::{Authenticated, RestState};
use crate::rpc::cases::GrpcCaseNotifier;
use crate::service::{CaseOutcome, OpenCase};
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
        oin: p.oin,
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
            pupil_pseudonyms: c.pupils,
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
        pupil_pseudonyms: request.pupil_pseudonyms,
        participant_oins: request.participant_oins,
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
