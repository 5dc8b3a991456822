//! `/v1/due-list`, `/v1/reports` and `/v1/counts`: the three-month clock and the G4 report for
//! the node's own organisation (its own signals and, with a claim, what the peers share under
//! it), and suppressed counts for another party. The service layer gathers, decides, counts and
//! audits; here only JSON (and the report's CSV) goes to and from its types. The due list names
//! children by pseudonym, in the body of the answer only.

use super::federation::{claim, AccessClaim, PeerFailure};
use super::problem::{Json, Problem};
use super::signals::{CategoryCode, SectorCode};
use super::{Authenticated, RestState};
use crate::rpc::federation::GrpcPeers;
use crate::service::federation::timeout_of;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Het vragen van de verzuimklok.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DueRequest {
    /// De claim die aan elk ander knooppunt wordt doorgegeven (bijvoorbeeld de routinestroom
    /// verzuimmelding van Leerplicht); zonder claim telt alleen het eigen knooppunt.
    #[serde(default)]
    pub claim: Option<AccessClaim>,
    /// De dag waarop wordt geteld; leeg: vandaag.
    #[serde(default)]
    #[schema(value_type = Option<chrono::NaiveDate>)]
    pub at: Option<String>,
    /// Hoe lang op elk knooppunt wordt gewacht, in milliseconden; 0: 3000.
    #[serde(default)]
    pub timeout_ms: u32,
}

/// Welke partner welk signaal van een kind houdt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalHolder {
    /// De partner (naam van het knooppunt, of "self").
    pub partner: String,
    /// Het kenmerk van die partner (leeg als de rol het niet mag zien).
    pub source_record_id: String,
}

/// Eén kind op de klok, over de partners heen gekoppeld op pseudoniem.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DueLine {
    pub pupil_pseudonym: String,
    /// Hele weken zonder aanbod.
    pub weeks: u32,
    /// Dagen zonder aanbod, vanaf de eerste dag van feitelijk verzuim.
    pub days: i64,
    /// De band: 4_WEEKS, 8_WEEKS, 10_WEEKS, 12_WEEKS of OVER_3_MONTHS.
    pub band: String,
    pub categories: Vec<CategoryCode>,
    pub sectors: Vec<SectorCode>,
    pub schools: Vec<String>,
    pub residence_municipalities: Vec<String>,
    pub holders: Vec<SignalHolder>,
    /// De escalatiestap van de regio bij deze band.
    pub escalation_step: String,
}

/// De verzuimklok: de kinderen, de urgentste eerst.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DueList {
    /// De dag waarop is geteld.
    pub at: chrono::NaiveDate,
    pub lines: Vec<DueLine>,
    /// De knooppunten die weigerden of faalden.
    pub failures: Vec<PeerFailure>,
}

/// Het vragen van de G4-rapportage of van tellingen.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRequest {
    /// De telregel, bijvoorbeeld g4, groningen of duo.
    #[serde(default)]
    #[schema(required = true, example = "g4")]
    pub rule: String,
    /// De peildata, naast elkaar.
    #[serde(default)]
    #[schema(required = true, value_type = Vec<chrono::NaiveDate>)]
    pub at: Vec<String>,
    /// Bij de rapportage: de claim om signalen van andere knooppunten mee te tellen; bij
    /// tellingen: de claim van de vrager (routinestroom monitoring).
    #[serde(default)]
    pub claim: Option<AccessClaim>,
    /// Hoe lang op elk knooppunt wordt gewacht, in milliseconden; 0: 3000.
    #[serde(default)]
    pub timeout_ms: u32,
}

/// Eén cel van het G4-resultatenschema.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportCell {
    /// De peildatum.
    pub date: chrono::NaiveDate,
    /// "region", een gemeentecode (GM....) of de naam van een samenwerkingsverband.
    pub scope: String,
    /// De rij, bijvoorbeeld AV_VO of TOTAL_NOT_ATTENDING.
    pub row: String,
    /// SHORTER_THAN_3_MONTHS (tot drie maanden), LONGER_THAN_3_MONTHS (langer) of TOTAL.
    pub column: String,
    /// Het aantal; ontbreekt als het is onderdrukt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Eén peildatum van een pact-indicator.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndicatorFigure {
    pub date: chrono::NaiveDate,
    /// Het aantal in de regio; ontbreekt als het onderdrukt of niet beschikbaar is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figure: Option<u64>,
    /// De verandering tegenover het ijkpunt in procenten, waar beide bekend zijn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_percent: Option<f64>,
    /// Het doel op deze peildatum, waar het bekend is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
}

/// Een indicator van het pact onder de telregel: ijkpunt, doel en de cijfers per peildatum.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportIndicator {
    pub id: String,
    pub name: String,
    /// Het ijkpunt in woorden (periode en aantal, of "geen (absoluut doel)").
    pub baseline: String,
    /// Het doel in woorden.
    pub target: String,
    /// Waar het doel vandaan komt (bron en regel).
    pub source: String,
    pub figures: Vec<IndicatorFigure>,
}

/// De G4-rapportage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cells: Vec<ReportCell>,
    /// De indicatoren van het pact onder deze telregel, met ijkpunt en doel.
    #[serde(default)]
    pub indicators: Vec<ReportIndicator>,
    /// Rijen die de vrager niet uit elke bron mag zien: "niet beschikbaar", nooit 0.
    pub unavailable_rows: Vec<String>,
    /// De gemeenten waarvan de ingezeten leerlingen de noemers vormen.
    pub denominator_municipalities: Vec<String>,
    pub failures: Vec<PeerFailure>,
}

/// Tellingen voor een andere partij: kleine cellen en hun complementen onderdrukt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub cells: Vec<ReportCell>,
    /// De drempel waaronder cellen zijn onderdrukt.
    pub threshold: u64,
    pub holder_oin: String,
    pub holder_name: String,
    pub policy_version: String,
    pub unavailable_rows: Vec<String>,
    pub denominator_municipalities: Vec<String>,
}

fn dto<D: serde::de::DeserializeOwned>(code: &str) -> Option<D> {
    serde_json::from_value(serde_json::Value::String(code.into())).ok()
}

fn failures(failures: Vec<crate::service::PeerFailure>) -> Vec<PeerFailure> {
    failures
        .into_iter()
        .map(|f| PeerFailure {
            peer: f.peer,
            code: f.code,
            message: f.message,
        })
        .collect()
}

fn due_line(l: crate::clock::DueLine) -> DueLine {
    DueLine {
        band: l.band.code().to_owned(),
        categories: l.categories.iter().filter_map(|c| dto(c.code())).collect(),
        sectors: l.sectors.iter().filter_map(|s| dto(s.code())).collect(),
        holders: l
            .holders
            .into_iter()
            .map(|(partner, source_record_id)| SignalHolder {
                partner,
                source_record_id,
            })
            .collect(),
        pupil_pseudonym: l.pupil_pseudonym,
        weeks: l.weeks,
        days: l.days,
        schools: l.schools,
        residence_municipalities: l.municipalities,
        escalation_step: l.escalation,
    }
}

fn cells(report: &crate::clock::SuppressedReport) -> Vec<ReportCell> {
    report
        .cells
        .iter()
        .map(|c| ReportCell {
            date: c.date,
            scope: c.scope.clone(),
            row: c.row.code().to_owned(),
            column: c.column.code().to_owned(),
            count: c.value,
        })
        .collect()
}

fn indicators(report: &crate::clock::SuppressedReport) -> Vec<ReportIndicator> {
    report
        .indicator_lines(&report.indicators)
        .into_iter()
        .map(|l| ReportIndicator {
            id: l.indicator.id.clone(),
            name: l.indicator.name.clone(),
            baseline: l.indicator.baseline_text(),
            target: l.indicator.target_text(),
            source: l.indicator.seed.clone(),
            figures: l
                .figures
                .iter()
                .enumerate()
                .map(|(k, &(date, figure))| IndicatorFigure {
                    date,
                    figure,
                    change_percent: l.changes.get(k).copied().flatten(),
                    target: l.targets.get(k).copied().flatten(),
                })
                .collect(),
        })
        .collect()
}

fn row_codes(rows: &[crate::clock::Row]) -> Vec<String> {
    rows.iter().map(|r| r.code().to_owned()).collect()
}

/// De verzuimklok opvragen.
///
/// Elk kind zonder passend aanbod, met het aantal weken, de band en de escalatiestap van de
/// regio; over de eigen signalen en, met een claim, wat de andere knooppunten daaronder delen.
/// Alleen de eigen organisatie van het knooppunt.
#[utoipa::path(
    post,
    path = "/due-list",
    operation_id = "dueList",
    tag = "klok",
    request_body = DueRequest,
    responses(
        (status = 200, description = "De verzuimklok.", body = DueList),
        (status = 400, description = "Een veld klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Het knooppunt heeft geen telregels.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn due_list(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<DueRequest>,
) -> Result<Json<DueList>, Problem> {
    let peers = GrpcPeers(&state.service.node().peers);
    let due = state
        .service
        .due(
            &caller,
            request.at.as_deref().unwrap_or_default(),
            request.claim.map(claim),
            &peers,
            None,
            timeout_of(request.timeout_ms),
        )
        .await?;
    Ok(Json(DueList {
        at: due.at,
        lines: due.lines.into_iter().map(due_line).collect(),
        failures: failures(due.failures),
    }))
}

/// De G4-rapportage opvragen.
///
/// Het G4-resultatenschema op de peildata, over de eigen signalen en, met een claim, wat de
/// andere knooppunten daaronder delen; niets onderdrukt (de eigen organisatie). Met
/// `Accept: text/csv` als CSV met een kopregel; met `Accept: image/svg+xml` de grafiek van de
/// hoofdrijen van de regio over de peildata, met de ijkpunten en doelen.
#[utoipa::path(
    post,
    path = "/reports",
    operation_id = "g4Report",
    tag = "klok",
    request_body = ReportRequest,
    responses(
        (status = 200, description = "De rapportage.",
         content((Report = "application/json"), (String = "text/csv"), (String = "image/svg+xml"))),
        (status = 400, description = "Een veld klopt niet (bijvoorbeeld een onbekende telregel).",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Het knooppunt heeft geen telregels.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn report(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Json(request): Json<ReportRequest>,
) -> Result<Response, Problem> {
    let peers = GrpcPeers(&state.service.node().peers);
    let g4 = state
        .service
        .g4_report(
            &caller,
            &request.rule,
            &request.at,
            request.claim.map(claim),
            &peers,
            None,
            timeout_of(request.timeout_ms),
        )
        .await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("image/svg+xml") {
        return Ok((
            [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
            g4.report.to_svg(),
        )
            .into_response());
    }
    let wants_csv = accept.contains("text/csv");
    if wants_csv {
        let csv = g4.report.to_csv().map_err(|e| {
            tracing::error!(error = %e, "report rendering failed");
            Problem::from(crate::service::ServiceError::Internal(
                "the report could not be rendered as CSV".into(),
            ))
        })?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response());
    }
    Ok(Json(Report {
        cells: cells(&g4.report),
        indicators: indicators(&g4.report),
        unavailable_rows: row_codes(&g4.report.unavailable),
        denominator_municipalities: g4.report.covered.clone(),
        failures: failures(g4.failures),
    })
    .into_response())
}

/// Tellingen opvragen.
///
/// Een andere partij vraagt onder haar claim (routinestroom monitoring) de cellen van de
/// rapportage van dit knooppunt; alleen aantallen verlaten het knooppunt, kleine cellen en hun
/// complementen onderdrukt. Beslist en vastgelegd als een vraag naar gegevens.
#[utoipa::path(
    post,
    path = "/counts",
    operation_id = "counts",
    tag = "klok",
    request_body = ReportRequest,
    responses(
        (status = 200, description = "De onderdrukte cellen.", body = Counts),
        (status = 400, description = "Een veld klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Het beleid staat deze vraag niet toe.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Het knooppunt heeft geen telregels of geen beleid.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn counts(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<ReportRequest>,
) -> Result<Json<Counts>, Problem> {
    let counts = state
        .service
        .counts(
            &caller,
            request.claim.map(claim),
            &request.rule,
            &request.at,
        )
        .await?;
    Ok(Json(Counts {
        cells: cells(&counts.report),
        threshold: counts.threshold,
        holder_oin: counts.holder.oin.to_string(),
        holder_name: counts.holder.name,
        policy_version: counts.policy_version,
        unavailable_rows: row_codes(&counts.report.unavailable),
        denominator_municipalities: counts.report.covered.clone(),
    }))
}

/// Een leerling opzoeken op BSN of onderwijsnummer: het nummer staat alleen in deze body.
#[derive(Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PupilLookupRequest {
    /// Het BSN of onderwijsnummer (9 cijfers). Alleen op dit verzoek; nooit in een antwoord.
    #[serde(default)]
    #[schema(required = true)]
    pub pupil_id: String,
}

impl std::fmt::Debug for PupilLookupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PupilLookupRequest").finish_non_exhaustive()
    }
}

/// Het pseudoniem van de opgezochte leerling.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PupilLookup {
    pub pupil_pseudonym: String,
}

/// Een leerling opzoeken.
///
/// Het knooppunt berekent het pseudoniem van een BSN of onderwijsnummer (via de
/// pseudonimiseringsdienst, geblindeerd) voor de eigen organisatie; het nummer wordt niet
/// bewaard, niet gelogd en niet teruggegeven. Het opzoeken komt in het auditlog met het
/// pseudoniem en wie er handelt.
#[utoipa::path(
    post,
    path = "/pupil-lookups",
    operation_id = "lookUpPupil",
    tag = "klok",
    request_body = PupilLookupRequest,
    responses(
        (status = 200, description = "Het pseudoniem.", body = PupilLookup),
        (status = 400, description = "Geen geldig BSN of onderwijsnummer.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "De pseudonimiseringsdienst is niet bereikbaar.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn look_up_pupil(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<PupilLookupRequest>,
) -> Result<Json<PupilLookup>, Problem> {
    let id = zeroize::Zeroizing::new(request.pupil_id);
    let pseudonym = state.service.pupil_pseudonym(&caller, &id).await?;
    Ok(Json(PupilLookup {
        pupil_pseudonym: pseudonym.to_string(),
    }))
}
