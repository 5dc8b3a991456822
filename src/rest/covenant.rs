//! `/v1/covenant/matrix`: the covenant's matrix (Bijlage 3) as the active policy states it, for a
//! party or an FG of the covenant: per case meeting who takes part, on which legal basis, for
//! which purpose and which data categories each seat sees; the routine flows; and what the ids
//! stand for. Only converts the checked policy's model (as `policy matrix` does); holds no
//! pupil data.

use super::problem::{Json, Problem};
use super::{Authenticated, RestState};
use crate::policy::{DataCategory, LegalBasis, Meeting, Participant, Policy, RoutineFlow};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// De convenantmatrix (Bijlage 3) onder het actieve beleid.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CovenantMatrix {
    /// De naam van het convenant.
    pub name: String,
    pub description: String,
    /// Welke tekst van het convenant het beleid volgt.
    pub text_version: String,
    pub policy_version: String,
    pub meetings: Vec<MatrixMeeting>,
    pub routine_flows: Vec<MatrixFlow>,
    pub legal_bases: Vec<MatrixLegalBasis>,
    pub purposes: Vec<MatrixPurpose>,
    pub data_categories: Vec<MatrixDataCategory>,
}

/// Een soort casusoverleg: wie deelneemt en wat elke deelnemer ziet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatrixMeeting {
    pub id: String,
    pub name: String,
    pub description: String,
    /// De doelen (ids) waarvoor het overleg bestaat.
    pub purposes: Vec<String>,
    pub participants: Vec<MatrixSeat>,
    /// Soorten organisaties die een casus mogen openen (regie).
    pub lead: Vec<String>,
    /// Elke deelnemer accepteert een gedeelde casus eerst zelf.
    pub needs_acceptance: bool,
    pub max_pupils: u32,
    /// Soorten organisaties die een zorgaanbod mogen vastleggen.
    pub may_record_offer: Vec<String>,
}

/// Een deelnemer (zetel) van een casusoverleg.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatrixSeat {
    /// Soort organisatie (code, bijvoorbeeld `swv`).
    pub org_type: String,
    /// Soort organisatie voluit, in het Nederlands.
    pub org_type_name: String,
    pub role: String,
    /// Grondslagen (ids).
    pub legal_bases: Vec<String>,
    /// Doelen (ids).
    pub purposes: Vec<String>,
    /// Gegevenscategorieën (ids) die deze deelnemer ziet.
    pub data_categories: Vec<String>,
}

/// Een vaste gegevensstroom (zonder casusoverleg).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatrixFlow {
    pub id: String,
    pub name: String,
    /// Soorten organisaties die de gegevens hebben.
    pub from: Vec<String>,
    /// Soorten organisaties die ze ontvangen.
    pub to: Vec<String>,
    pub role: String,
    pub legal_bases: Vec<String>,
    pub purpose: String,
    pub data_categories: Vec<String>,
    /// Welke leerlingen: `residents`, `schools`, `own` of `none`.
    pub scope: String,
    pub processing_activity: String,
}

/// Een grondslag.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatrixLegalBasis {
    pub id: String,
    pub law: String,
    pub article: String,
    pub text: String,
    /// Waar het artikel vandaan komt (leeg als het beleid het niet zegt).
    pub source: String,
    /// Een FG heeft het artikel tegen de wettekst gecontroleerd.
    pub verified: bool,
    /// Een uitzondering van AVG art. 9 lid 2 (bijzondere persoonsgegevens).
    pub art9_exception: bool,
}

/// Een doel (doelbinding).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatrixPurpose {
    pub id: String,
    pub text: String,
}

/// Een gegevenscategorie: welke signalen en welke velden daarvan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatrixDataCategory {
    pub id: String,
    pub name: String,
    /// Signaalcategorieën (codes).
    pub signal_categories: Vec<String>,
    /// Velden van die signalen.
    pub fields: Vec<String>,
    /// Een bijzonder persoonsgegeven (AVG art. 9).
    pub special: bool,
}

fn codes<T: Copy>(items: &[T], code: impl Fn(T) -> &'static str) -> Vec<String> {
    items.iter().map(|t| code(*t).to_owned()).collect()
}

fn seat(p: &Participant) -> MatrixSeat {
    MatrixSeat {
        org_type: p.org_type.code().to_owned(),
        org_type_name: p.org_type.label().to_owned(),
        role: p.role.clone(),
        legal_bases: p.legal_bases.clone(),
        purposes: p.purposes.clone(),
        data_categories: p.data_categories.clone(),
    }
}

fn meeting(m: &Meeting) -> MatrixMeeting {
    MatrixMeeting {
        id: m.id.clone(),
        name: m.name.clone(),
        description: m.description.clone(),
        purposes: m.purposes.clone(),
        participants: m.participants.iter().map(seat).collect(),
        lead: codes(&m.lead, |t| t.code()),
        needs_acceptance: m.needs_acceptance,
        max_pupils: u32::try_from(m.max_pupils).unwrap_or(u32::MAX),
        may_record_offer: codes(&m.may_record_offer, |t| t.code()),
    }
}

fn flow(f: &RoutineFlow) -> MatrixFlow {
    MatrixFlow {
        id: f.id.clone(),
        name: f.name.clone(),
        from: codes(&f.from, |t| t.code()),
        to: codes(&f.to, |t| t.code()),
        role: f.role.clone(),
        legal_bases: f.legal_bases.clone(),
        purpose: f.purpose.clone(),
        data_categories: f.data_categories.clone(),
        scope: f.scope.code().to_owned(),
        processing_activity: f.processing_activity.clone(),
    }
}

fn basis(b: &LegalBasis) -> MatrixLegalBasis {
    MatrixLegalBasis {
        id: b.id.clone(),
        law: b.law.clone(),
        article: b.article.clone(),
        text: b.text.clone(),
        source: b.source.clone(),
        verified: b.verified,
        art9_exception: b.art9_exception,
    }
}

fn category(d: &DataCategory) -> MatrixDataCategory {
    MatrixDataCategory {
        id: d.id.clone(),
        name: d.name.clone(),
        signal_categories: codes(&d.signal_categories, |c| c.code()),
        fields: d.fields.iter().map(|f| f.name().to_owned()).collect(),
        special: d.special,
    }
}

/// The matrix of `policy`.
pub fn matrix(policy: &Policy) -> CovenantMatrix {
    let c = policy.covenant();
    CovenantMatrix {
        name: c.name.clone(),
        description: c.description.clone(),
        text_version: c.text_version.clone(),
        policy_version: policy.version().to_owned(),
        meetings: policy.meetings().iter().map(meeting).collect(),
        routine_flows: policy.routine_flows().iter().map(flow).collect(),
        legal_bases: policy.legal_bases().iter().map(basis).collect(),
        purposes: policy
            .purposes()
            .iter()
            .map(|p| MatrixPurpose {
                id: p.id.clone(),
                text: p.text.clone(),
            })
            .collect(),
        data_categories: policy.data_categories().iter().map(category).collect(),
    }
}

/// De convenantmatrix (Bijlage 3).
///
/// Per casusoverleg wie mag deelnemen, op welke grondslag, voor welk doel en welke
/// gegevenscategorieën elke deelnemer ziet; de vaste gegevensstromen; en wat elke grondslag,
/// elk doel en elke gegevenscategorie inhoudt. Voor elke partij en elke FG van het convenant.
#[utoipa::path(
    get,
    path = "/covenant/matrix",
    operation_id = "covenantMatrix",
    tag = "convenant",
    responses(
        (status = 200, description = "De matrix.", body = CovenantMatrix),
        (status = 403, description = "Geen partij en geen FG van het convenant.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Het knooppunt draait zonder beleid.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn covenant_matrix(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<CovenantMatrix>, Problem> {
    let policy = state.service.covenant(&caller)?;
    Ok(Json(matrix(&policy)))
}
