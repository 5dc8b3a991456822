//! `/v1/signals`: a partner's own system pushes a JSON batch of signals to its own node and lists
//! them, pupils by pseudonym only. Converts JSON to the service layer's types and back; the
//! checks, pseudonymisation, durable commit and audit are the service's. A pupil id travels only
//! in a push body, a pseudonym only in a search body.

use super::problem::{Json, Problem, Query, RejectedRecord};
use super::{Authenticated, RestState};
use crate::signal::{Category, ExemptionTerm, OfferKind, RawSignal, Sector, Signal, Status};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// The most records one REST push may carry (a gRPC push streams up to 100,000).
pub const MAX_PUSH_RECORDS: usize = 10_000;
/// The largest push body: room for [`MAX_PUSH_RECORDS`] records of up to 1 KiB of JSON each.
pub const MAX_PUSH_BYTES: usize = MAX_PUSH_RECORDS * 1024;
/// The most signals one page of a listing holds.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Waar een signaal over gaat (Leerplichtwet en G4-definities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CategoryCode {
    /// Langdurig relatief verzuim.
    Lrv,
    /// Absoluut verzuim.
    Av,
    /// Vrijstelling art. 5 sub a.
    #[serde(rename = "VRIJSTELLING_5A")]
    Vrijstelling5a,
    /// Vrijstelling art. 5 sub b.
    #[serde(rename = "VRIJSTELLING_5B")]
    Vrijstelling5b,
    /// Vrijstelling art. 5 sub c.
    #[serde(rename = "VRIJSTELLING_5C")]
    Vrijstelling5c,
    /// Langdurig ziekteverzuim (gezondheidsgegeven, AVG art. 9).
    LangdurigZiek,
    /// Schorsing.
    Schorsing,
    /// Verwijdering.
    Verwijdering,
    /// Ongeoorloofd verzuim gemeld bij Leerplicht (het vroege signaal).
    Verzuim,
}

/// De sector van de (laatste) school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SectorCode {
    Po,
    Sbo,
    So,
    Vo,
    Vso,
    Pro,
    Mbo,
}

/// Waar het signaal staat: OPEN, dan AANBOD, dan TERUGGELEID of GESLOTEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SignalStatus {
    Open,
    Aanbod,
    Teruggeleid,
    Gesloten,
}

/// Wat een aanbod inhoudt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OfferKindCode {
    Onderwijs,
    Zorg,
    OnderwijsEnZorg,
}

/// De termijn van een vrijstelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExemptionTermCode {
    Temporary,
    Permanent,
}

/// Eén signaal zoals het eigen systeem van een partner het aanlevert. Het enige bericht met een
/// leerling-id (BSN of onderwijsnummer); het knooppunt vervangt dat door een pseudoniem voordat
/// er iets wordt opgeslagen, gelogd of verstuurd. Geen namen, adressen of geboortedata.
/// Een veld dat niet klopt weigert alleen dit record (met index, veld en reden).
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignalRecord {
    /// Het eigen kenmerk van de partner voor dit signaal (hoogstens 128 afdrukbare ASCII-tekens).
    /// Opnieuw aanleveren met hetzelfde kenmerk werkt het signaal bij. Nooit het BSN of
    /// onderwijsnummer, noch negen of meer cijfers op een rij.
    #[schema(required = true, example = "swv-2026-0001")]
    #[serde(default)]
    pub source_record_id: String,
    /// Het BSN (negen cijfers, 11-proef) of het onderwijsnummer van de leerling.
    #[schema(required = true)]
    #[serde(default)]
    pub pupil_id: String,
    /// Waar het signaal over gaat.
    #[schema(required = true, value_type = CategoryCode)]
    #[serde(default)]
    pub category: String,
    /// De sector van de (laatste) school; leeg alleen bij AV of VRIJSTELLING_5A van een kind
    /// zonder schoolverleden.
    #[schema(value_type = Option<SectorCode>)]
    #[serde(default)]
    pub sector: String,
    /// De woongemeente als CBS-code, bijvoorbeeld GM0014.
    #[schema(required = true, example = "GM0014")]
    #[serde(default)]
    pub residence_municipality: String,
    /// De (laatste) school: BRIN en vestigingsnummer, bijvoorbeeld 00AA01.
    #[schema(example = "00AA01")]
    #[serde(default)]
    pub school: String,
    /// De eerste dag van feitelijk verzuim.
    #[schema(required = true, format = Date)]
    #[serde(default)]
    pub absent_since: String,
    /// Waar het signaal staat.
    #[schema(required = true, value_type = SignalStatus)]
    #[serde(default)]
    pub status: String,
    /// De dag van het aanbod; verplicht bij AANBOD.
    #[schema(format = Date)]
    #[serde(default)]
    pub offer_date: String,
    /// De leeftijd in hele jaren (3 tot en met 23).
    #[schema(required = true, minimum = 3, maximum = 23)]
    #[serde(default)]
    pub age: u32,
    /// Adres in onderzoek.
    #[serde(default)]
    pub address_under_investigation: bool,
    /// Bij AV: vrijstelling 5c aangevraagd.
    #[serde(default)]
    pub exemption_5c_requested: bool,
    /// Bij AV: wacht op de februari-instroom van het MBO.
    #[serde(default)]
    pub awaiting_mbo_intake: bool,
    /// Bij een vrijstelling: tijdelijk of blijvend.
    #[schema(value_type = Option<ExemptionTermCode>)]
    #[serde(default)]
    pub exemption_term: String,
    /// Bij een vrijstelling: de laatste dag ervan.
    #[schema(format = Date)]
    #[serde(default)]
    pub exemption_end: String,
    /// Bij TERUGGELEID of GESLOTEN: de dag van sluiten.
    #[schema(format = Date)]
    #[serde(default)]
    pub closed_on: String,
    /// De dag waarop `age` de leeftijd was; leeg: de dag van aanleveren.
    #[schema(format = Date)]
    #[serde(default)]
    pub age_on: String,
    /// Bij een aanbod: wat het inhoudt.
    #[schema(value_type = Option<OfferKindCode>)]
    #[serde(default)]
    pub offer_kind: String,
    /// Bij een aanbod: de eerste dag dat de plek er echt is.
    #[schema(format = Date)]
    #[serde(default)]
    pub offer_place_from: String,
    /// Bij een aanbod: afgesproken met ouders en kind.
    #[serde(default)]
    pub offer_parents_agreed: bool,
}

/// An enum field's code as the domain value: empty is "not set", an unknown code is refused
/// without echoing it (it could be anything the caller typed).
fn coded<T: Copy>(
    all: &[T],
    code: fn(T) -> &'static str,
    text: &str,
    what: &str,
) -> Result<T, String> {
    if text.is_empty() {
        return Err("is not set".into());
    }
    all.iter()
        .copied()
        .find(|v| code(*v) == text)
        .ok_or_else(|| {
            let known: Vec<&str> = all.iter().map(|v| code(*v)).collect();
            format!("is not a known {what} (one of {})", known.join(", "))
        })
}

/// An optional enum field's code: empty is `None`.
fn coded_opt<T: Copy>(
    all: &[T],
    code: fn(T) -> &'static str,
    text: &str,
    what: &str,
) -> Result<Option<T>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    coded(all, code, text, what).map(Some)
}

const EXEMPTION_TERMS: [ExemptionTerm; 2] = [ExemptionTerm::Temporary, ExemptionTerm::Permanent];
const OFFER_KINDS: [OfferKind; 3] = [
    OfferKind::Onderwijs,
    OfferKind::Zorg,
    OfferKind::OnderwijsEnZorg,
];

fn exemption_term_code(t: ExemptionTerm) -> &'static str {
    match t {
        ExemptionTerm::Temporary => "TEMPORARY",
        ExemptionTerm::Permanent => "PERMANENT",
    }
}

impl SignalRecord {
    /// The record as the service layer takes it; the pupil id moves into wiping storage.
    pub fn into_raw(self) -> RawSignal {
        RawSignal {
            source_record_id: self.source_record_id,
            pupil_id: zeroize::Zeroizing::new(self.pupil_id),
            category: coded(&Category::ALL, Category::code, &self.category, "category"),
            sector: coded(&Sector::ALL, Sector::code, &self.sector, "sector"),
            residence_municipality: self.residence_municipality,
            school: self.school,
            absent_since: self.absent_since,
            status: coded(&Status::ALL, Status::code, &self.status, "status"),
            offer_date: self.offer_date,
            age: self.age,
            address_under_investigation: self.address_under_investigation,
            exemption_5c_requested: self.exemption_5c_requested,
            awaiting_mbo_intake: self.awaiting_mbo_intake,
            exemption_term: coded_opt(
                &EXEMPTION_TERMS,
                exemption_term_code,
                &self.exemption_term,
                "exemption term",
            ),
            exemption_end: self.exemption_end,
            closed_on: self.closed_on,
            age_on: self.age_on,
            offer_kind: coded_opt(
                &OFFER_KINDS,
                OfferKind::code,
                &self.offer_kind,
                "offer kind",
            ),
            offer_place_from: self.offer_place_from,
            offer_parents_agreed: self.offer_parents_agreed,
        }
    }
}

/// Een aanlevering: een reeks signalen, hoogstens 10.000 per verzoek.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushRequest {
    /// De signalen, elk op zich gecontroleerd.
    pub records: Vec<SignalRecord>,
}

/// Het antwoord op een aanlevering. De opgeslagen records zijn duurzaam opgeslagen wanneer dit
/// antwoord aankomt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// Het aantal opgeslagen records (nieuw of bijgewerkt).
    pub accepted: u32,
    /// De eerste geweigerde records (hoogstens 100), elk met index, veld en reden.
    pub rejected: Vec<RejectedRecord>,
    /// Hoeveel records in totaal zijn geweigerd.
    pub rejected_count: u32,
}

/// Een opgeslagen signaal zoals het knooppunt het toont: de leerling alleen als pseudoniem.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalView {
    /// Het eigen kenmerk van de partner voor dit signaal.
    pub source_record_id: String,
    /// Het pseudoniem van de leerling ("v" + sleutelversie + "." + 22 base64url-tekens).
    pub pupil_pseudonym: String,
    pub category: CategoryCode,
    /// Leeg bij een kind zonder schoolverleden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector: Option<SectorCode>,
    pub residence_municipality: String,
    /// Leeg als er geen school is.
    pub school: String,
    pub absent_since: chrono::NaiveDate,
    pub status: SignalStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_date: Option<chrono::NaiveDate>,
    pub age: u32,
    /// Wanneer dit knooppunt het signaal het laatst opsloeg (UTC).
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub address_under_investigation: bool,
    pub exemption_5c_requested: bool,
    pub awaiting_mbo_intake: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption_term: Option<ExemptionTermCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption_end: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_on: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_on: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_kind: Option<OfferKindCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_place_from: Option<chrono::NaiveDate>,
    pub offer_parents_agreed: bool,
}

/// A domain value as its DTO, through the code both share.
fn recode<T: serde::de::DeserializeOwned>(code: &str) -> T {
    serde_json::from_value(serde_json::Value::String(code.into()))
        .expect("every domain code is a DTO code")
}

impl From<&Signal> for SignalView {
    fn from(s: &Signal) -> Self {
        Self {
            source_record_id: s.source_record_id.clone(),
            pupil_pseudonym: s.pupil_pseudonym.to_string(),
            category: recode(s.category.code()),
            sector: s.sector.map(|x| recode(x.code())),
            residence_municipality: s.residence_municipality.to_string(),
            school: s
                .school
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            absent_since: s.absent_since,
            status: recode(s.status.code()),
            offer_date: s.offer_date,
            age: s.age,
            updated_at: s.updated_at,
            address_under_investigation: s.address_under_investigation,
            exemption_5c_requested: s.exemption_5c_requested,
            awaiting_mbo_intake: s.awaiting_mbo_intake,
            exemption_term: s.exemption_term.map(|t| recode(exemption_term_code(t))),
            exemption_end: s.exemption_end,
            closed_on: s.closed_on,
            age_on: s.age_on,
            offer_kind: s.offer_kind.map(|k| recode(k.code())),
            offer_place_from: s.offer_place_from,
            offer_parents_agreed: s.offer_parents_agreed,
        }
    }
}

/// Welke signalen een lijst toont; elk gezet filter moet kloppen.
#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Alleen leerlingen die in deze gemeente wonen (CBS-code, bijvoorbeeld GM0014).
    pub residence_municipality: Option<String>,
    /// Alleen deze school (BRIN en vestigingsnummer).
    pub school: Option<String>,
    /// Alleen deze categorie.
    pub category: Option<CategoryCode>,
    /// Alleen deze status.
    pub status: Option<SignalStatus>,
    /// Hoeveel signalen een pagina hoogstens bevat (1 tot en met 1000; standaard 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// De `nextPageToken` van de vorige pagina; leeg: de eerste pagina.
    pub page_token: Option<String>,
}

/// Zoeken naar signalen van een leerling: het pseudoniem staat in de body, nooit in de URL.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchRequest {
    /// Alleen signalen van deze leerling, op pseudoniem (zoals `pactgate pseudonym` het berekent).
    pub pupil_pseudonym: Option<String>,
    /// Alleen leerlingen die in deze gemeente wonen (CBS-code).
    pub residence_municipality: Option<String>,
    /// Alleen deze school (BRIN en vestigingsnummer).
    pub school: Option<String>,
    /// Alleen deze categorie.
    pub category: Option<CategoryCode>,
    /// Alleen deze status.
    pub status: Option<SignalStatus>,
    /// Hoeveel signalen een pagina hoogstens bevat (1 tot en met 1000; standaard 100).
    #[schema(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// De `nextPageToken` van de vorige pagina; leeg: de eerste pagina.
    pub page_token: Option<String>,
}

impl From<ListQuery> for SearchRequest {
    fn from(q: ListQuery) -> Self {
        Self {
            pupil_pseudonym: None,
            residence_municipality: q.residence_municipality,
            school: q.school,
            category: q.category,
            status: q.status,
            page_size: q.page_size,
            page_token: q.page_token,
        }
    }
}

/// Eén pagina signalen, op volgorde van `sourceRecordId`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalPage {
    pub signals: Vec<SignalView>,
    /// Vraag hiermee de volgende pagina op; ontbreekt op de laatste pagina.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A page token: the `source_record_id` of a page's last signal, base64url so it reads as
/// opaque (it is the partner's own id, never a pupil's).
fn page_token(last: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn after_token(token: &str) -> Result<String, Problem> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Problem::invalid("pageToken", "is not a page token this API gave"))
}

/// A DTO value's code (its JSON string).
fn dto_code<D: Serialize>(dto: D) -> String {
    serde_json::to_value(dto)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A filter's DTO value as its domain value, through the code both share.
fn filter_value<T: Copy, D: Serialize>(
    dto: Option<D>,
    all: &[T],
    code: fn(T) -> &'static str,
    field: &str,
) -> Result<Option<T>, Problem> {
    dto.map(|d| coded(all, code, &dto_code(d), field))
        .transpose()
        .map_err(|reason| Problem::invalid(field, reason))
}

/// Lists a page through the service, which checks the filter and audits what it returns.
async fn page(
    state: &RestState,
    caller: &crate::service::Caller,
    search: SearchRequest,
) -> Result<SignalPage, Problem> {
    let size = search.page_size.map_or(DEFAULT_PAGE_SIZE, |n| n as usize);
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(Problem::invalid(
            "pageSize",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let after = search.page_token.as_deref().map(after_token).transpose()?;
    let filter = crate::store::SignalFilter {
        residence_municipality: search
            .residence_municipality
            .filter(|m| !m.is_empty())
            .map(|m| crate::signal::check_municipality(&m))
            .transpose()
            .map_err(|e| Problem::invalid("residenceMunicipality", e.reason))?,
        school: match search.school.filter(|c| !c.is_empty()) {
            Some(c) => crate::signal::check_school(&c, Category::Lrv)
                .map_err(|e| Problem::invalid("school", e.reason))?,
            None => None,
        },
        pupil_pseudonym: search.pupil_pseudonym,
        category: filter_value(search.category, &Category::ALL, Category::code, "category")?,
        status: filter_value(search.status, &Status::ALL, Status::code, "status")?,
        limit: Some(size),
    };
    let signals = state.service.list_page(caller, filter, after).await?;
    let next_page_token = (signals.len() == size)
        .then(|| signals.last().map(|s| page_token(&s.source_record_id)))
        .flatten();
    Ok(SignalPage {
        signals: signals.iter().map(SignalView::from).collect(),
        next_page_token,
    })
}

/// Signalen aanleveren.
///
/// Een reeks van hoogstens 10.000 signalen van de eigen organisatie. Elk record wordt op zich
/// gecontroleerd: een fout record wordt geweigerd met zijn index, veld en reden, de goede worden
/// opgeslagen (opnieuw aanleveren met hetzelfde `sourceRecordId` werkt bij). Het antwoord komt pas
/// als alles duurzaam is opgeslagen. Worden alle records geweigerd, dan is het antwoord 400 met
/// de geweigerde records in `rejected`.
#[utoipa::path(
    post,
    path = "/signals",
    operation_id = "pushSignals",
    tag = "signalen",
    request_body = PushRequest,
    responses(
        (status = 200, description = "Opgeslagen (de geweigerde records staan in `rejected`).",
         body = PushReport),
        (status = 400, description = "Alle records geweigerd, of de body heeft niet de beschreven vorm.",
         body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Het certificaat noemt geen organisatie.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag aanleveren.",
         body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Meer dan 10.000 records, of een te grote body.",
         body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Het knooppunt neemt al zoveel aanleveringen aan als het mag.",
         body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Het knooppunt kon niet opslaan; niets daarvan is bevestigd.",
         body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "De pseudonimiseringsdienst is niet bereikbaar.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn push(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<PushRequest>,
) -> Result<Json<PushReport>, Problem> {
    if request.records.len() > MAX_PUSH_RECORDS {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "records: {} records; a push may carry at most {MAX_PUSH_RECORDS} (split it: \
                 pushing a record again replaces it)",
                request.records.len()
            ),
        ));
    }
    let mut session = state.service.start_push(caller)?;
    for record in request.records {
        session.add(record.into_raw()).await?;
    }
    let report = session.finish().await?;
    let rejected: Vec<RejectedRecord> = report
        .rejected
        .into_iter()
        .map(|r| RejectedRecord {
            index: u32::try_from(r.index).unwrap_or(u32::MAX),
            field: super::problem::camel_case(&r.field),
            reason: r.reason,
        })
        .collect();
    if report.accepted == 0 && report.rejected_count > 0 {
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            format!(
                "all {} records were refused; nothing was stored",
                report.rejected_count
            ),
        );
        problem.rejected = rejected;
        return Err(problem);
    }
    Ok(Json(PushReport {
        accepted: u32::try_from(report.accepted).unwrap_or(u32::MAX),
        rejected,
        rejected_count: u32::try_from(report.rejected_count).unwrap_or(u32::MAX),
    }))
}

/// Signalen opvragen.
///
/// De opgeslagen signalen van de eigen organisatie, per pagina, leerlingen alleen als
/// pseudoniem. Zoeken op leerling gaat met `POST /signals/search`: een pseudoniem hoort niet in
/// een URL.
#[utoipa::path(
    get,
    path = "/signals",
    operation_id = "listSignals",
    tag = "signalen",
    params(ListQuery),
    responses(
        (status = 200, description = "Een pagina signalen.", body = SignalPage),
        (status = 400, description = "Een filter of paginaparameter klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Het certificaat noemt geen organisatie.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<SignalPage>, Problem> {
    Ok(Json(page(&state, &caller, query.into()).await?))
}

/// Signalen zoeken, ook op leerling.
///
/// Als `GET /signals`, met de filters in de body, zodat ook op pseudoniem kan worden gezocht
/// zonder dat het in een URL of log belandt.
#[utoipa::path(
    post,
    path = "/signals/search",
    operation_id = "searchSignals",
    tag = "signalen",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Een pagina signalen.", body = SignalPage),
        (status = 400, description = "Een filter of paginaparameter klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Het certificaat noemt geen organisatie.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Alleen de eigen organisatie van het knooppunt mag dit.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(search): Json<SearchRequest>,
) -> Result<Json<SignalPage>, Problem> {
    Ok(Json(page(&state, &caller, search).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_code_has_its_dto_value() {
        for c in Category::ALL {
            let _: CategoryCode = recode(c.code());
        }
        for s in Sector::ALL {
            let _: SectorCode = recode(s.code());
        }
        for s in Status::ALL {
            let _: SignalStatus = recode(s.code());
        }
        for k in OFFER_KINDS {
            let _: OfferKindCode = recode(k.code());
        }
        for t in EXEMPTION_TERMS {
            let _: ExemptionTermCode = recode(exemption_term_code(t));
        }
    }

    #[test]
    fn an_unknown_code_is_refused_without_echo() {
        let e = coded(&Category::ALL, Category::code, "123456782", "category").unwrap_err();
        assert!(!e.contains("123456782"), "{e}");
        assert_eq!(
            coded(&Category::ALL, Category::code, "", "category").unwrap_err(),
            "is not set"
        );
    }
}
