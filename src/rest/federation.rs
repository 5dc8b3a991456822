//! `/v1/federated-queries`: a partner's own system asks every peer through its own node under one
//! claim. The service layer checks the claim's text and audits the query and every answer; the
//! peers are asked over gRPC (the node-to-node protocol) and each decides for itself. Here only
//! JSON goes to and from those types: a peer's signal shows only the fields it disclosed.

use super::problem::{Json, Problem};
use super::signals::{CategoryCode, SignalStatus};
use super::{Authenticated, RestState};
use crate::pb;
use crate::rpc::federation::GrpcPeers;
use crate::service::federation::timeout_of;
use crate::service::{Claim, ClaimContext};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Wie wat vraagt, waarom en in welke context; elk deel wordt getoetst aan het beleid van het
/// convenant. Precies een van `routineFlow` en `caseRef`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessClaim {
    /// De rol zoals het beleid die noemt, bijvoorbeeld `leerplichtambtenaar`.
    #[schema(required = true, example = "leerplichtambtenaar")]
    #[serde(default)]
    pub role: String,
    /// Het id van de wettelijke grondslag in het beleid, bijvoorbeeld `lpw-art21`.
    #[schema(required = true, example = "lpw-art21")]
    #[serde(default)]
    pub legal_basis: String,
    /// Het id van het doel in het beleid, bijvoorbeeld `verzuimaanpak`.
    #[schema(required = true, example = "verzuimaanpak")]
    #[serde(default)]
    pub purpose: String,
    /// Wie er handelt (een naam of personeelsnummer van de eigen organisatie, nooit van een
    /// leerling); komt in het auditlog.
    #[serde(default)]
    pub actor: String,
    /// Het id van een routinestroom in het beleid, bijvoorbeeld `verzuimmelding`.
    #[serde(default)]
    pub routine_flow: Option<String>,
    /// Een casus van een casusoverleg.
    #[serde(default)]
    pub case_ref: Option<CaseRef>,
}

/// Een verwijzing naar een open casus.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaseRef {
    /// Het id van het soort casusoverleg in het beleid.
    #[serde(default)]
    pub meeting_type: String,
    /// Het casus-id zoals het knooppunt van de regievoerder het gaf.
    #[serde(default)]
    pub case_id: String,
}

/// Welke signalen een vraag zoekt; elk gezet filter moet kloppen.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryFilter {
    /// Alleen leerlingen die in deze gemeente wonen (CBS-code).
    #[serde(default)]
    pub residence_municipality: String,
    /// Alleen deze school (BRIN en vestigingsnummer).
    #[serde(default)]
    pub school: String,
    /// Alleen deze categorieën; leeg: elke die de rol mag zien.
    #[serde(default)]
    pub categories: Vec<CategoryCode>,
    /// Alleen deze status.
    #[serde(default)]
    pub status: Option<SignalStatus>,
    /// Alleen open signalen van leerlingen die langer dan dit aantal dagen verzuimen.
    #[serde(default)]
    pub open_longer_than_days: u32,
}

/// Een gefedereerde vraag: aan elk knooppunt van het convenant tegelijk.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedQueryRequest {
    #[schema(required = true)]
    #[serde(default)]
    pub claim: AccessClaim,
    #[serde(default)]
    pub filter: QueryFilter,
    /// Hoe lang op elk knooppunt wordt gewacht, in milliseconden; 0: 3000. Hoogstens 60000.
    #[schema(maximum = 60000)]
    #[serde(default)]
    pub timeout_ms: u32,
}

/// Een signaal zoals een ander knooppunt het deelde: alleen de velden die de rol van de vrager
/// mag zien staan erin.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedSignal {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_record_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pupil_pseudonym: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<CategoryCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector: Option<super::signals::SectorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residence_municipality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absent_since: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SignalStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_date: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
}

/// Het antwoord van één knooppunt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerAnswer {
    /// De naam van het knooppunt in de configuratie.
    pub peer: String,
    /// De OIN van de organisatie die de signalen houdt.
    pub holder_oin: String,
    /// De naam van die organisatie.
    pub holder_name: String,
    /// De regel van het beleid die de vraag toestond.
    pub rule: String,
    /// De verwerkingsactiviteit (id in het register van de houder).
    pub processing_activity: String,
    /// De versie van het beleid dat besliste.
    pub policy_version: String,
    /// De velden die de rol van de vrager mag zien (namen zoals in het proto).
    pub disclosed_fields: Vec<String>,
    pub signals: Vec<SharedSignal>,
}

/// Een knooppunt dat weigerde, faalde of niet op tijd antwoordde.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerFailure {
    pub peer: String,
    /// De gRPC-statusnaam, bijvoorbeeld PERMISSION_DENIED of DEADLINE_EXCEEDED.
    pub code: String,
    /// De reden van het knooppunt, of wat er misging.
    pub message: String,
}

/// De antwoorden van alle knooppunten.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedQueryResponse {
    pub answers: Vec<PeerAnswer>,
    pub failures: Vec<PeerFailure>,
}

/// A claim as the service layer takes it.
pub(super) fn claim(c: AccessClaim) -> Claim {
    let context = match (c.routine_flow, c.case_ref) {
        (Some(flow), None) => Some(ClaimContext::RoutineFlow(flow)),
        (None, Some(case)) => Some(ClaimContext::Case {
            meeting_type: case.meeting_type,
            case_id: case.case_id,
        }),
        // Both or neither: the service and the peers refuse it as gRPC's empty oneof.
        _ => None,
    };
    Claim {
        role: c.role,
        legal_basis: c.legal_basis,
        purpose: c.purpose,
        actor: c.actor,
        context,
    }
}

/// The proto enum value of a code both share (`LRV` is `CATEGORY_LRV`).
fn pb_value<E>(code: &str, prefix: &str, parse: fn(&str) -> Option<E>) -> Option<E> {
    parse(&format!("{prefix}{code}"))
}

fn code_of<D: Serialize>(dto: D) -> String {
    serde_json::to_value(dto)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn filter(f: QueryFilter) -> pb::QueryFilter {
    pb::QueryFilter {
        residence_municipality: f.residence_municipality,
        school: f.school,
        categories: f
            .categories
            .into_iter()
            .filter_map(|c| pb_value(&code_of(c), "CATEGORY_", pb::Category::from_str_name))
            .map(i32::from)
            .collect(),
        status: f
            .status
            .and_then(|s| pb_value(&code_of(s), "STATUS_", pb::Status::from_str_name))
            .map_or(0, i32::from),
        open_longer_than_days: f.open_longer_than_days,
    }
}

/// A proto enum's name as the code of its DTO (`CATEGORY_LRV` is `LRV`); unspecified is none.
fn dto_of<T: serde::de::DeserializeOwned>(name: &str, prefix: &str) -> Option<T> {
    let code = name.strip_prefix(prefix)?;
    serde_json::from_value(serde_json::Value::String(code.into())).ok()
}

fn shared(view: pb::SignalView, disclosed: &[String]) -> SharedSignal {
    let has = |name: &str| disclosed.iter().any(|d| d == name);
    let text = |name: &str, value: String| (has(name) && !value.is_empty()).then_some(value);
    let date = |name: &str, value: &str| {
        has(name)
            .then(|| chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
            .flatten()
    };
    let category = pb::Category::try_from(view.category).map_or("", |c| c.as_str_name());
    let sector = pb::Sector::try_from(view.sector).map_or("", |c| c.as_str_name());
    let status = pb::Status::try_from(view.status).map_or("", |c| c.as_str_name());
    SharedSignal {
        category: has("category")
            .then(|| dto_of(category, "CATEGORY_"))
            .flatten(),
        sector: has("sector").then(|| dto_of(sector, "SECTOR_")).flatten(),
        status: has("status").then(|| dto_of(status, "STATUS_")).flatten(),
        absent_since: date("absent_since", &view.absent_since),
        offer_date: date("offer_date", &view.offer_date),
        age: has("age").then_some(view.age),
        source_record_id: text("source_record_id", view.source_record_id),
        pupil_pseudonym: text("pupil_pseudonym", view.pupil_pseudonym),
        residence_municipality: text("residence_municipality", view.residence_municipality),
        school: text("school", view.school),
    }
}

fn answer(a: pb::PeerAnswer) -> PeerAnswer {
    let r = a.response.unwrap_or_default();
    let holder = r.holder.unwrap_or_default();
    let signals = r
        .signals
        .into_iter()
        .map(|v| shared(v, &r.disclosed_fields))
        .collect();
    PeerAnswer {
        peer: a.peer,
        holder_oin: holder.oin,
        holder_name: holder.name,
        rule: r.rule,
        processing_activity: r.processing_activity,
        policy_version: r.policy_version,
        disclosed_fields: r.disclosed_fields,
        signals,
    }
}

/// Een gefedereerde vraag stellen.
///
/// Het eigen knooppunt vraagt elk ander knooppunt van het convenant tegelijk, onder dezelfde
/// claim, en wacht per knooppunt hoogstens `timeoutMs`. Elk knooppunt beslist zelf aan de hand
/// van het beleid en deelt alleen de velden die de rol mag zien. Een weigering of storing staat
/// in `failures`. Alleen de eigen organisatie van het knooppunt mag vragen; alles wordt
/// vastgelegd in het auditlog.
#[utoipa::path(
    post,
    path = "/federated-queries",
    operation_id = "federatedQuery",
    tag = "uitwisseling",
    request_body = FederatedQueryRequest,
    responses(
        (status = 200, description = "De antwoorden en weigeringen van de knooppunten.",
         body = FederatedQueryResponse),
        (status = 400, description = "De claim of het filter klopt niet (bijvoorbeeld een \
         leerlingnummer in vrije tekst).",
         body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Het certificaat noemt geen organisatie.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag vragen.",
         body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Het knooppunt kon de vraag niet vastleggen.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn federated_query(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<FederatedQueryRequest>,
) -> Result<Json<FederatedQueryResponse>, Problem> {
    let peers = GrpcPeers(&state.service.node().peers);
    let answers = state
        .service
        .federated_query(
            &caller,
            &peers,
            claim(request.claim),
            Some(filter(request.filter)),
            timeout_of(request.timeout_ms),
        )
        .await?;
    Ok(Json(FederatedQueryResponse {
        answers: answers.answers.into_iter().map(answer).collect(),
        failures: answers
            .failures
            .into_iter()
            .map(|f| PeerFailure {
                peer: f.peer,
                code: f.code,
                message: f.message,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dto_codes_are_proto_names_without_their_prefix() {
        let f = filter(QueryFilter {
            categories: vec![CategoryCode::Lrv, CategoryCode::Vrijstelling5a],
            status: Some(SignalStatus::Open),
            ..Default::default()
        });
        assert_eq!(
            f.categories,
            [
                pb::Category::Lrv as i32,
                pb::Category::Vrijstelling5a as i32
            ]
        );
        assert_eq!(f.status, pb::Status::Open as i32);
    }

    #[test]
    fn only_disclosed_fields_are_shown() {
        let view = pb::SignalView {
            source_record_id: "r1".into(),
            pupil_pseudonym: "v1.abc".into(),
            category: pb::Category::Av as i32,
            school: "00AA01".into(),
            absent_since: "2026-01-05".into(),
            age: 12,
            ..Default::default()
        };
        let s = shared(
            view,
            &[
                "pupil_pseudonym".into(),
                "category".into(),
                "absent_since".into(),
            ],
        );
        assert_eq!(s.pupil_pseudonym.as_deref(), Some("v1.abc"));
        assert_eq!(s.category, Some(CategoryCode::Av));
        assert!(s.absent_since.is_some());
        assert!(s.source_record_id.is_none() && s.school.is_none() && s.age.is_none());
    }
}
