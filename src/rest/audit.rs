//! `/v1/audit/...`: the FG's inspection of the node's audit log: entries by filter (in a body:
//! a filter may name a pupil), export (JSON lines, CSV or Logboek Dataverwerkingen), the access
//! report of one pupil (the BSN in the body only), verification and an entry's inclusion proof.
//! The service layer grants (only an FG of the node's party) and audits every call; hashes
//! travel as lowercase hex.

use super::problem::{Json, Path, Problem};
use super::{Authenticated, RestState};
use crate::audit;
use crate::pb;
use crate::service::audit::{CosignedCheckpoint, ReportSubject};
use crate::service::{Caller, ServiceError};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Welke regels van het auditlog; elk gezet filter moet kloppen.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditFilter {
    /// Alleen regels over deze leerling (pseudoniem).
    #[serde(default)]
    pub pupil_pseudonym: Option<String>,
    /// Alleen regels van deze organisatie (OIN).
    #[serde(default)]
    pub actor_oin: Option<String>,
    #[serde(default)]
    pub case_id: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
    /// Alleen ALLOW of DENY.
    #[serde(default)]
    pub decision: Option<AuditDecision>,
    /// Vanaf dit moment.
    #[serde(default)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Tot dit moment.
    #[serde(default)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Een beslissing in het auditlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditDecision {
    Allow,
    Deny,
}

/// Een pagina regels opvragen.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntrySearch {
    #[serde(default)]
    pub filter: AuditFilter,
    /// Alleen regels na dit volgnummer; ontbreekt: vanaf het begin.
    #[serde(default)]
    pub after_seq: Option<u64>,
    /// Hoogstens zoveel regels (standaard en hoogstens 1000).
    #[serde(default)]
    #[schema(maximum = 1000)]
    pub limit: Option<u32>,
}

/// Een regel van het auditlog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: u64,
    pub time: chrono::DateTime<chrono::Utc>,
    pub trace_id: String,
    pub span_id: String,
    pub node_oin: String,
    pub actor_oin: String,
    pub actor_name: String,
    pub actor: String,
    /// Wat er gebeurde (zoals in de canonieke codering, bijvoorbeeld `disclose`).
    pub action: String,
    pub routine_flow: String,
    pub meeting_type: String,
    pub case_id: String,
    pub processing_activity: String,
    pub purpose: String,
    pub legal_basis: String,
    pub pupil_pseudonyms: Vec<String>,
    pub data_categories: Vec<String>,
    pub decision: AuditDecision,
    pub reason: String,
    pub policy_version: String,
    pub count: u64,
}

/// Een pagina regels.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryPage {
    pub entries: Vec<AuditEntry>,
    /// Er zijn meer regels: vraag verder met `afterSeq` = het laatste volgnummer.
    pub more: bool,
}

/// Het exportformaat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportFormat {
    /// Eén JSON-object per regel.
    JsonLines,
    /// CSV met een kopregel.
    Csv,
    /// Logboek Dataverwerkingen 1.0 (JSON lines).
    Ldv,
}

/// Een export.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    pub format: ExportFormat,
    #[serde(default)]
    pub filter: AuditFilter,
}

/// Het inzageverzoek (AVG art. 15) van één leerling: BSN of onderwijsnummer, of pseudoniem.
/// Alleen in de body; het nummer wordt nooit opgeslagen, gelogd of herhaald.
#[derive(Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessReportRequest {
    #[serde(default)]
    pub pupil_id: Option<String>,
    #[serde(default)]
    pub pupil_pseudonym: Option<String>,
}

/// Een checkpoint met de medeondertekeningen van de getuigen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    /// De root hash, hexadecimaal.
    pub root_hash: String,
    /// De ondertekende note.
    pub note: String,
    pub cosignatures: Vec<String>,
    pub witnesses: Vec<String>,
}

/// Het inzagerapport.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessReport {
    /// Het pseudoniem van de leerling onder de huidige sleutel.
    pub pupil_pseudonym: String,
    pub entries: Vec<AuditEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<SignedCheckpoint>,
}

/// De uitkomst van het controleren van het hele log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Het log klopt met elk vertrouwd checkpoint.
    pub ok: bool,
    pub entries: u64,
    pub checkpoints_checked: u64,
    pub cosignatures_checked: u64,
    /// Bij een fout: het eerste verkeerde volgnummer.
    pub first_bad_seq: u64,
    /// Bij een fout: wat er mis is.
    pub problem: String,
    pub root_hash: String,
    pub size: u64,
}

/// Een regel met zijn inclusiebewijs onder het nieuwste checkpoint (RFC 9162).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryProof {
    pub entry: AuditEntry,
    /// De canonieke bytes van de regel, base64.
    pub entry_bytes: String,
    pub leaf_hash: String,
    pub path: Vec<String>,
    pub checkpoint: SignedCheckpoint,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn code<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An audit entry as the API shows it.
pub fn entry(e: &audit::Entry) -> AuditEntry {
    AuditEntry {
        seq: e.seq,
        time: e.time,
        trace_id: e.trace_id.clone(),
        span_id: e.span_id.clone(),
        node_oin: e.node_oin.clone(),
        actor_oin: e.actor_oin.clone(),
        actor_name: e.actor_name.clone(),
        actor: e.actor.clone(),
        action: code(e.action),
        routine_flow: e.flow.clone(),
        meeting_type: e.meeting_type.clone(),
        case_id: e.case_id.clone(),
        processing_activity: e.processing_activity.clone(),
        purpose: e.purpose.clone(),
        legal_basis: e.legal_basis.clone(),
        pupil_pseudonyms: e.pupils.clone(),
        data_categories: e.data_categories.clone(),
        decision: match e.decision {
            audit::Decision::Allow => AuditDecision::Allow,
            audit::Decision::Deny => AuditDecision::Deny,
        },
        reason: e.reason.clone(),
        policy_version: e.policy_version.clone(),
        count: e.count,
    }
}

fn checkpoint(c: CosignedCheckpoint) -> SignedCheckpoint {
    SignedCheckpoint {
        origin: c.origin,
        size: c.size,
        root_hash: hex(&c.root_hash),
        note: c.note,
        cosignatures: c.cosignatures,
        witnesses: c.witnesses,
    }
}

fn filter(f: AuditFilter) -> audit::Filter {
    audit::Filter {
        pupil: f.pupil_pseudonym,
        actor_oin: f.actor_oin,
        case_id: f.case_id,
        purpose: f.purpose,
        decision: f.decision.map(|d| match d {
            AuditDecision::Allow => audit::Decision::Allow,
            AuditDecision::Deny => audit::Decision::Deny,
        }),
        since: f.from,
        until: f.until,
    }
}

async fn grant(
    state: &RestState,
    caller: &Caller,
    what: &str,
    pupils: Vec<String>,
) -> Result<crate::policy::FgGrant, Problem> {
    Ok(state.service.fg_access(caller, what, pupils).await?)
}

/// The FG's answers are forbidden to anyone else: documented once for every audit operation.
const FG_ONLY: &str = "Alleen een FG van de partij van dit knooppunt (volgens het beleid).";

/// Regels van het auditlog zoeken.
///
/// Een pagina regels, oudste eerst, die aan het filter voldoen. Alleen voor een FG van de partij
/// van het knooppunt; elke vraag wordt zelf ook vastgelegd.
#[utoipa::path(
    post,
    path = "/audit/entries/search",
    operation_id = "searchAuditEntries",
    tag = "audit",
    request_body = EntrySearch,
    responses(
        (status = 200, description = "Een pagina regels.", body = EntryPage),
        (status = 400, description = "Het filter klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = FG_ONLY, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(search): Json<EntrySearch>,
) -> Result<Json<EntryPage>, Problem> {
    let pupils = search.filter.pupil_pseudonym.iter().cloned().collect();
    let grant = grant(&state, &caller, "list entries", pupils).await?;
    let (page, more) = state.service.audit_page(
        &grant,
        &filter(search.filter),
        search.after_seq.is_none(),
        search.after_seq.unwrap_or_default(),
        search.limit.map_or(0, |n| n.min(1000) as usize),
    )?;
    Ok(Json(EntryPage {
        entries: page.iter().map(entry).collect(),
        more,
    }))
}

/// Het auditlog exporteren.
///
/// Als JSON lines, CSV of Logboek Dataverwerkingen-records. Alleen voor een FG.
#[utoipa::path(
    post,
    path = "/audit/exports",
    operation_id = "exportAudit",
    tag = "audit",
    request_body = ExportRequest,
    responses(
        (status = 200, description = "De export.",
         content((String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, description = "Het formaat of filter klopt niet.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = FG_ONLY, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn export(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<ExportRequest>,
) -> Result<Response, Problem> {
    let grant = grant(&state, &caller, "export", Vec::new()).await?;
    let entries = state
        .service
        .audit_entries(&grant, &filter(request.filter))?;
    let node = state.service.node();
    let latest = node.audit.latest_checkpoint().map_err(ServiceError::from)?;
    let ldv = audit::ldv::LdvContext {
        node_oin: &node.own.oin,
        checkpoint: latest.as_ref().map(|c| &c.checkpoint),
    };
    let (format, content_type) = match request.format {
        ExportFormat::JsonLines => (pb::ExportFormat::JsonLines, "application/x-ndjson"),
        ExportFormat::Csv => (pb::ExportFormat::Csv, "text/csv; charset=utf-8"),
        ExportFormat::Ldv => (pb::ExportFormat::Ldv, "application/x-ndjson"),
    };
    let bytes = crate::rpc::audit::export(&entries, format, &ldv).map_err(|status| {
        tracing::error!(error = %status.message(), "audit export failed");
        Problem::from(ServiceError::Internal(
            "the export could not be made".into(),
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// Het inzagerapport van één leerling (AVG art. 15).
///
/// Alle regels over de leerling, onder elke sleutelversie, met het nieuwste checkpoint. Het
/// BSN of onderwijsnummer staat alleen in de body. Alleen voor een FG.
#[utoipa::path(
    post,
    path = "/audit/access-reports",
    operation_id = "accessReport",
    tag = "audit",
    request_body = AccessReportRequest,
    responses(
        (status = 200, description = "Het inzagerapport.", body = AccessReport),
        (status = 400, description = "Geen geldig leerlingnummer of pseudoniem.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = FG_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "De pseudonimiseringsdienst is niet bereikbaar.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn access_report(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Json(request): Json<AccessReportRequest>,
) -> Result<Json<AccessReport>, Problem> {
    let subject = match request.pupil_id {
        Some(id) if !id.is_empty() => ReportSubject::PupilId(zeroize::Zeroizing::new(id)),
        _ => ReportSubject::Pseudonym(request.pupil_pseudonym.unwrap_or_default()),
    };
    let report = state.service.access_report(&caller, subject).await?;
    Ok(Json(AccessReport {
        pupil_pseudonym: report.pseudonym,
        entries: report.entries.iter().map(entry).collect(),
        checkpoint: report.checkpoint.map(checkpoint),
    }))
}

/// Het auditlog controleren.
///
/// Controleert het hele log tegen elk checkpoint dat het knooppunt vertrouwt en tegen wat de
/// getuigen van de andere knooppunten nu houden. Alleen voor een FG.
#[utoipa::path(
    get,
    path = "/audit/verification",
    operation_id = "verifyAudit",
    tag = "audit",
    responses(
        (status = 200, description = "De uitkomst (ook bij een fout in het log).", body = Verification),
        (status = 403, description = FG_ONLY, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Verification>, Problem> {
    let grant = grant(&state, &caller, "verify", Vec::new()).await?;
    let held = crate::rpc::audit::held_by_peers(&state.service).await;
    let service = state.service.clone();
    let result = tokio::task::spawn_blocking(move || service.verify(&grant, held))
        .await
        .map_err(ServiceError::from)??;
    let v = crate::rpc::convert::verify_response(result);
    Ok(Json(Verification {
        ok: v.ok,
        entries: v.entries,
        checkpoints_checked: v.checkpoints_checked,
        cosignatures_checked: v.cosignatures_checked,
        first_bad_seq: v.first_bad_seq,
        problem: v.problem,
        root_hash: hex(&v.root_hash),
        size: v.size,
    }))
}

/// Het inclusiebewijs van één regel.
///
/// De regel, zijn canonieke bytes en het bewijs dat hij in het log onder het nieuwste
/// checkpoint zit; iedereen kan het narekenen. Alleen voor een FG.
#[utoipa::path(
    get,
    path = "/audit/entries/{seq}/proof",
    operation_id = "proveAuditEntry",
    tag = "audit",
    params(("seq" = u64, Path, description = "Het volgnummer van de regel.")),
    responses(
        (status = 200, description = "Het bewijs.", body = EntryProof),
        (status = 400, description = "Het volgnummer valt buiten het nieuwste checkpoint.",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = FG_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Er is nog geen checkpoint.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn prove(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
    Path(seq): Path<u64>,
) -> Result<Json<EntryProof>, Problem> {
    use base64::Engine as _;
    let grant = grant(&state, &caller, "prove", Vec::new()).await?;
    let proof = state.service.prove(&grant, seq)?;
    Ok(Json(EntryProof {
        entry: entry(&proof.entry),
        entry_bytes: base64::engine::general_purpose::STANDARD.encode(&proof.entry_bytes),
        leaf_hash: hex(&proof.leaf_hash),
        path: proof.path.iter().map(|h| hex(h)).collect(),
        checkpoint: checkpoint(proof.checkpoint),
    }))
}

/// Het nieuwste checkpoint met wat elke getuige van het log heeft medeondertekend.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointStatus {
    pub checkpoint: SignedCheckpoint,
    /// De sleutel waarmee het knooppunt zijn checkpoints ondertekent (signed-note-formaat).
    pub log_key: String,
    pub witnesses: Vec<WitnessCheckpoint>,
}

/// Eén getuige en het nieuwste checkpoint van dit log dat zij medeondertekende.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WitnessCheckpoint {
    /// De naam van de getuige (uit haar sleutel).
    pub witness: String,
    /// Haar cosignature/v1-sleutel, zoals geconfigureerd.
    pub key: String,
    /// Wat zij medeondertekende; ontbreekt zolang zij niets medeondertekende.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosigned: Option<CosignedByWitness>,
}

/// Een checkpoint dat een getuige medeondertekende, met het bewijs dat het nieuwste checkpoint
/// erop voortbouwt (RFC 9162).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosignedByWitness {
    pub size: u64,
    /// De root hash die de getuige ondertekende, hexadecimaal.
    pub root_hash: String,
    /// Wanneer zij medeondertekende.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Haar medeondertekening (een regel van de note).
    pub cosignature: String,
    /// Het consistentiebewijs van deze grootte naar die van het nieuwste checkpoint.
    pub consistency_path: Vec<String>,
}

fn cosigned_by_witness(c: crate::service::audit::Cosigned) -> CosignedByWitness {
    CosignedByWitness {
        size: c.size,
        root_hash: hex(&c.root_hash),
        time: i64::try_from(c.timestamp)
            .ok()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .unwrap_or_default(),
        cosignature: c.line,
        consistency_path: c.consistency.iter().map(|h| hex(h)).collect(),
    }
}

/// Het nieuwste checkpoint en de getuigen.
///
/// Het nieuwste ondertekende checkpoint van het auditlog met de medeondertekeningen, de sleutel
/// van het log, en per geconfigureerde getuige het nieuwste checkpoint dat zij medeondertekende
/// met het consistentiebewijs naar het nieuwste; iedereen kan het narekenen. Voor de eigen
/// organisatie van het knooppunt en haar FG (die vraag wordt vastgelegd).
#[utoipa::path(
    get,
    path = "/audit/checkpoints/latest",
    operation_id = "latestCheckpoint",
    tag = "audit",
    responses(
        (status = 200, description = "Het checkpoint en de getuigen.", body = CheckpointStatus),
        (status = 403, description = "Niet de eigen organisatie en niet haar FG.",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Er is nog geen checkpoint.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn latest_checkpoint(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<CheckpointStatus>, Problem> {
    state.service.status_access(&caller, "checkpoints").await?;
    let status = state.service.checkpoint_status()?;
    Ok(Json(CheckpointStatus {
        checkpoint: checkpoint(status.checkpoint),
        log_key: status.log_key,
        witnesses: status
            .witnesses
            .into_iter()
            .map(|w| WitnessCheckpoint {
                witness: w.witness,
                key: w.key,
                cosigned: w.cosigned.map(cosigned_by_witness),
            })
            .collect(),
    }))
}
