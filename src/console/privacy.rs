//! The FG's Privacy pages: the node's audit log with filters and paging
//! (`POST /v1/audit/entries/search`), an entry's detail with its inclusion proof checked here
//! against the newest cosigned checkpoint (`GET /v1/audit/entries/{seq}/proof`), "verify the whole
//! log" with the witnesses' checkpoints (`GET /v1/audit/verification`,
//! `GET /v1/audit/checkpoints/latest`), the export as a download (`POST /v1/audit/exports`, a CSRF form) and the access report for a BSN
//! (`POST /v1/audit/access-reports`, a CSRF form; the BSN goes only into that body and is never
//! shown, logged or kept).

use super::evidence::{check_proof, check_witnesses, Check, WitnessView};
use super::pages::{check_form, render, FormKey, Layout};
use super::person::Person;
use super::start::witness_label;
use super::Console;
use crate::rest::audit::{
    AccessReport, AccessReportRequest, AuditDecision, AuditEntry, AuditFilter, EntryPage,
    EntrySearch, Verification,
};
use crate::rest::audit::{CheckpointStatus, EntryProof, ExportFormat, ExportRequest};
use crate::rest::peers::PeerList;
use askama::Template;
use axum::extract::Path;
use axum::extract::{Query, State};
use axum::http::header;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use std::sync::Arc;

/// Where the access report's form posts.
pub const INZAGE: &str = "/privacy/inzage";

/// Entries per page.
const PAGE: u32 = 50;

/// An audit entry as the tables show it.
pub struct Row {
    pub seq: u64,
    pub time: String,
    pub who: String,
    pub action: String,
    pub purpose: String,
    pub decision: &'static str,
    pub reason: String,
}

impl From<&AuditEntry> for Row {
    fn from(e: &AuditEntry) -> Self {
        let who = if e.actor.is_empty() {
            e.actor_name.clone()
        } else {
            format!("{} ({})", e.actor, e.actor_name)
        };
        Self {
            seq: e.seq,
            time: e.time.format("%d-%m-%Y %H:%M:%S").to_string(),
            who,
            action: e.action.clone(),
            purpose: e.purpose.clone(),
            decision: match e.decision {
                AuditDecision::Allow => "toegestaan",
                AuditDecision::Deny => "geweigerd",
            },
            reason: e.reason.clone(),
        }
    }
}

/// The audit log's filters and page, as the browser sends them.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct LogQuery {
    pub besluit: String,
    pub organisatie: String,
    pub na: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/auditlog.html")]
struct LogPage<'a> {
    layout: Layout,
    node_org: &'a str,
    besluit: String,
    organisatie: String,
    rows: Vec<Row>,
    next: String,
    problem: Option<String>,
}

/// `GET /privacy/auditlog`.
pub async fn log(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Query(query): Query<LogQuery>,
) -> Response {
    let decision = match query.besluit.as_str() {
        "ALLOW" => Some(AuditDecision::Allow),
        "DENY" => Some(AuditDecision::Deny),
        _ => None,
    };
    let besluit = if decision.is_some() {
        query.besluit
    } else {
        String::new()
    };
    let organisatie = if crate::pseudonym::is_oin(&query.organisatie) {
        query.organisatie
    } else {
        String::new()
    };
    let search = EntrySearch {
        filter: AuditFilter {
            decision,
            actor_oin: (!organisatie.is_empty()).then(|| organisatie.clone()),
            ..AuditFilter::default()
        },
        after_seq: query.na,
        limit: Some(PAGE),
    };
    let answer = console
        .node
        .post::<_, EntryPage>("/v1/audit/entries/search", &person.name, &search)
        .await;
    let mut page = LogPage {
        layout: Layout::new(&console, "Auditlog", "auditlog", &person),
        node_org: &console.node_addr,
        besluit,
        organisatie,
        rows: Vec::new(),
        next: String::new(),
        problem: None,
    };
    match answer {
        Ok(entries) => {
            page.rows = entries.entries.iter().map(Row::from).collect();
            if let (true, Some(last)) = (entries.more, entries.entries.last()) {
                page.next = format!(
                    "/privacy/auditlog?besluit={}&organisatie={}&na={}",
                    page.besluit, page.organisatie, last.seq
                );
            }
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &page)
        }
    }
}

/// The witnesses' checkpoints as the Controle page shows them, checked here.
pub struct WitnessesView {
    /// The newest checkpoint's signature.
    pub signed: Check,
    pub size: u64,
    pub root_hash: String,
    /// Per witness, named by its peer where known.
    pub rows: Vec<(String, WitnessView)>,
}

#[derive(Template)]
#[template(path = "console/controle.html")]
struct VerifyPage {
    layout: Layout,
    verification: Option<Verification>,
    witnesses: Result<WitnessesView, String>,
    problem: Option<String>,
}

fn witnesses_view(status: &CheckpointStatus, peers: Option<&PeerList>) -> WitnessesView {
    let (signed, views) = check_witnesses(status);
    WitnessesView {
        signed,
        size: status.checkpoint.size,
        root_hash: status.checkpoint.root_hash.clone(),
        rows: views
            .into_iter()
            .map(|v| {
                let name =
                    peers.map_or_else(|| v.witness.clone(), |p| witness_label(&v.witness, p));
                (name, v)
            })
            .collect(),
    }
}

/// `GET /privacy/controle`: the node verifies the whole log with the witnesses; the console
/// checks per witness its newest cosigned checkpoint and that the log extends it.
pub async fn verify(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
) -> Response {
    let node = &console.node;
    let (answer, status, peers) = tokio::join!(
        node.get::<Verification>("/v1/audit/verification", &person.name),
        node.get::<CheckpointStatus>("/v1/audit/checkpoints/latest", &person.name),
        node.get::<PeerList>("/v1/peers", &person.name),
    );
    let witnesses = status
        .map(|s| witnesses_view(&s, peers.as_ref().ok()))
        .map_err(|e| e.to_string());
    let layout = Layout::new(&console, "Controle van het auditlog", "controle", &person);
    let (status, page) = match answer {
        Ok(v) => (
            StatusCode::OK,
            VerifyPage {
                layout,
                verification: Some(v),
                witnesses,
                problem: None,
            },
        ),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            VerifyPage {
                layout,
                verification: None,
                witnesses,
                problem: Some(e.to_string()),
            },
        ),
    };
    render(status, &page)
}

/// The access report as the page shows it (no number of the pupil: the pseudonym only).
pub struct ReportView {
    pub pseudonym: String,
    pub rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "console/inzage.html")]
struct AccessPage {
    layout: Layout,
    csrf: String,
    report: Option<ReportView>,
    problem: Option<String>,
}

/// The access report's form. Its `Debug` leaves the number out.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct AccessForm {
    pub csrf: String,
    pub bsn: String,
}

impl std::fmt::Debug for AccessForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessForm { .. }")
    }
}

fn access_page(console: &Console, person: &Person, key: &FormKey) -> AccessPage {
    AccessPage {
        layout: Layout::new(console, "Inzagerapport", "inzage", person),
        csrf: key.token(console, person, INZAGE),
        report: None,
        problem: None,
    }
}

/// `GET /privacy/inzage`: the form.
pub async fn access_form(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
) -> Response {
    render(StatusCode::OK, &access_page(&console, &person, &key))
}

/// `POST /privacy/inzage`: the report, after the CSRF check; the number goes to the node only.
pub async fn access_report(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(mut form): Form<AccessForm>,
) -> Response {
    use zeroize::Zeroize as _;
    if let Err(refused) = check_form(&console, &headers, &person, INZAGE, &form.csrf) {
        return *refused;
    }
    let mut request = AccessReportRequest {
        pupil_id: Some(form.bsn.trim().to_owned()),
        pupil_pseudonym: None,
    };
    form.bsn.zeroize();
    let answer = console
        .node
        .post::<_, AccessReport>("/v1/audit/access-reports", &person.name, &request)
        .await;
    if let Some(id) = request.pupil_id.as_mut() {
        id.zeroize();
    }
    let mut page = access_page(&console, &person, &key);
    match answer {
        Ok(report) => {
            page.report = Some(ReportView {
                pseudonym: report.pupil_pseudonym.clone(),
                rows: report.entries.iter().map(Row::from).collect(),
            });
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &page)
        }
    }
}

/// One field of an entry's detail.
pub struct Field {
    pub label: &'static str,
    pub value: String,
}

/// An entry's fields in Dutch, as its canonical bytes give them.
fn fields_of(e: &AuditEntry) -> Vec<Field> {
    let row = Row::from(e);
    let list = |items: &[String]| {
        if items.is_empty() {
            "geen".to_owned()
        } else {
            items.join(", ")
        }
    };
    [
        ("Volgnummer", e.seq.to_string()),
        ("Tijd (UTC)", row.time),
        ("Wie", row.who),
        ("Organisatie (OIN)", e.actor_oin.clone()),
        ("Handeling", e.action.clone()),
        ("Routinestroom", e.routine_flow.clone()),
        ("Casusoverleg", e.meeting_type.clone()),
        ("Casus", e.case_id.clone()),
        ("Verwerkingsactiviteit", e.processing_activity.clone()),
        ("Doel", e.purpose.clone()),
        ("Grondslag", e.legal_basis.clone()),
        ("Leerlingen (pseudoniem)", list(&e.pupil_pseudonyms)),
        ("Gegevenscategorieën", list(&e.data_categories)),
        ("Besluit", row.decision.to_owned()),
        ("Reden", e.reason.clone()),
        ("Beleidsversie", e.policy_version.clone()),
        ("Aantal", e.count.to_string()),
        ("Trace", e.trace_id.clone()),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(label, value)| Field { label, value })
    .collect()
}

/// What the entry page shows of the proof.
pub struct ProofView {
    pub fields: Vec<Field>,
    pub leaf_hash: String,
    pub path: Vec<String>,
    pub origin: String,
    pub size: u64,
    pub root_hash: String,
    pub note: String,
    pub cosigners: Vec<String>,
    pub checks: Vec<Check>,
    pub ok: bool,
}

#[derive(Template)]
#[template(path = "console/regel.html")]
struct EntryDetailPage {
    layout: Layout,
    seq: u64,
    proof: Option<ProofView>,
    problem: Option<String>,
}

fn proof_view(
    proof: &EntryProof,
    keys: Option<&CheckpointStatus>,
    peers: Option<&PeerList>,
) -> ProofView {
    let (mut checks, decoded) = check_proof(proof, keys);
    // What is shown is what the bytes say; the node's JSON must say the same.
    let shown = decoded.as_ref().map(crate::rest::audit::entry);
    let same = shown
        .as_ref()
        .is_some_and(|s| serde_json::to_value(s).ok() == serde_json::to_value(&proof.entry).ok());
    if !same {
        checks.push(Check {
            what: "Regel zoals de node hem toont".into(),
            ok: false,
            detail: "de node toont de regel anders dan zijn bytes zeggen".into(),
        });
    }
    let label = |w: &String| peers.map_or_else(|| w.clone(), |p| witness_label(w, p));
    for check in &mut checks {
        if let Some(witness) = check.what.strip_prefix("Getuige ") {
            check.what = format!("Getuige {}", label(&witness.to_owned()));
        }
    }
    ProofView {
        fields: fields_of(shown.as_ref().unwrap_or(&proof.entry)),
        leaf_hash: proof.leaf_hash.clone(),
        path: proof.path.clone(),
        origin: proof.checkpoint.origin.clone(),
        size: proof.checkpoint.size,
        root_hash: proof.checkpoint.root_hash.clone(),
        // The note with the witnesses' cosignature lines, as a cosigned note reads.
        note: proof
            .checkpoint
            .cosignatures
            .iter()
            .fold(proof.checkpoint.note.clone(), |note, line| {
                format!("{note}{}\n", line.trim_end())
            }),
        cosigners: proof.checkpoint.witnesses.iter().map(label).collect(),
        ok: checks.iter().all(|c| c.ok),
        checks,
    }
}

/// `GET /privacy/auditlog/{seq}`: one entry with its inclusion proof, checked here against the
/// newest cosigned checkpoint with the audit module's own verification.
pub async fn entry(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Path(seq): Path<String>,
) -> Response {
    // A sequence number, never text that could be a pupil's number (nor echoed if it is none).
    let Some(seq) = seq
        .parse::<u64>()
        .ok()
        .filter(|_| !crate::pseudonym::looks_like_id(&seq))
    else {
        return super::pages::refusal(
            StatusCode::NOT_FOUND,
            "Regel niet gevonden",
            "Dit is geen volgnummer van een regel. Kies een regel in het auditlog.",
        );
    };
    let node = &console.node;
    let path = format!("/v1/audit/entries/{seq}/proof");
    let (proof, keys, peers) = tokio::join!(
        node.get::<EntryProof>(&path, &person.name),
        node.get::<CheckpointStatus>("/v1/audit/checkpoints/latest", &person.name),
        node.get::<PeerList>("/v1/peers", &person.name),
    );
    let mut page = EntryDetailPage {
        layout: Layout::new(
            &console,
            &format!("Regel {seq} van het auditlog"),
            "auditlog",
            &person,
        ),
        seq,
        proof: None,
        problem: None,
    };
    match proof {
        Ok(proof) => {
            page.proof = Some(proof_view(&proof, keys.as_ref().ok(), peers.as_ref().ok()));
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &page)
        }
    }
}

/// Where the export form posts.
pub const EXPORT: &str = "/privacy/exporteren";

/// The export form, as sent (and shown again).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ExportForm {
    pub csrf: String,
    pub formaat: String,
    pub besluit: String,
    pub organisatie: String,
    pub doel: String,
    pub van: String,
    pub tot: String,
}

#[derive(Template)]
#[template(path = "console/exporteren.html")]
struct ExportPage {
    layout: Layout,
    csrf: String,
    form: ExportForm,
    problem: Option<String>,
}

fn export_page(console: &Console, person: &Person, key: &FormKey, form: ExportForm) -> ExportPage {
    ExportPage {
        layout: Layout::new(console, "Auditlog exporteren", "exporteren", person),
        csrf: key.token(console, person, EXPORT),
        form,
        problem: None,
    }
}

/// A field of the export form that is wrong: its name and why (never its value, which could be
/// anything a person typed, a pupil's number too).
type FieldError = (&'static str, &'static str);

/// The start (UTC) of the day `days` after `date` (jjjj-mm-dd, as a date field sends it);
/// empty: none.
fn day_start(
    field: &'static str,
    date: &str,
    days: u64,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, FieldError> {
    let date = date.trim();
    if date.is_empty() {
        return Ok(None);
    }
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| (field, "geen datum (jjjj-mm-dd)"))?;
    Ok((day + chrono::Days::new(days))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc()))
}

impl ExportForm {
    /// The node's export request, or which field is wrong.
    fn request(&self) -> Result<(ExportRequest, &'static str), FieldError> {
        let (format, extension) = match self.formaat.as_str() {
            "CSV" => (ExportFormat::Csv, "csv"),
            "JSON_LINES" => (ExportFormat::JsonLines, "jsonl"),
            "LDV" => (ExportFormat::Ldv, "ldv.jsonl"),
            _ => return Err(("formaat", "geen exportformaat")),
        };
        let decision = match self.besluit.as_str() {
            "" => None,
            "ALLOW" => Some(AuditDecision::Allow),
            "DENY" => Some(AuditDecision::Deny),
            _ => return Err(("besluit", "geen besluit")),
        };
        let oin = self.organisatie.trim();
        if !oin.is_empty() && !crate::pseudonym::is_oin(oin) {
            return Err(("organisatie", "een OIN heeft 20 cijfers"));
        }
        let purpose = self.doel.trim();
        if crate::pseudonym::looks_like_id(purpose) {
            return Err(("doel", "bevat een nummer dat van een leerling kan zijn"));
        }
        let filter = AuditFilter {
            decision,
            actor_oin: (!oin.is_empty()).then(|| oin.to_owned()),
            purpose: (!purpose.is_empty()).then(|| purpose.to_owned()),
            from: day_start("van", &self.van, 0)?,
            // "tot en met" the day: the node's `until` is exclusive.
            until: day_start("tot", &self.tot, 1)?,
            ..AuditFilter::default()
        };
        Ok((ExportRequest { format, filter }, extension))
    }

    /// The form shown again without the value of `field`, which was wrong.
    fn without(mut self, field: &str) -> Self {
        match field {
            "formaat" => self.formaat.clear(),
            "besluit" => self.besluit.clear(),
            "organisatie" => self.organisatie.clear(),
            "doel" => self.doel.clear(),
            "van" => self.van.clear(),
            _ => self.tot.clear(),
        }
        self
    }
}

/// `GET /privacy/exporteren`: the form.
pub async fn export_form(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
) -> Response {
    let form = ExportForm {
        formaat: "CSV".into(),
        ..ExportForm::default()
    };
    render(StatusCode::OK, &export_page(&console, &person, &key, form))
}

/// `POST /privacy/exporteren`: after the CSRF check, the node's export as a file download.
pub async fn export(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
    Extension(key): Extension<FormKey>,
    headers: HeaderMap,
    Form(form): Form<ExportForm>,
) -> Response {
    use axum::response::IntoResponse as _;
    if let Err(refused) = check_form(&console, &headers, &person, EXPORT, &form.csrf) {
        return *refused;
    }
    let (request, extension) = match form.request() {
        Ok(request) => request,
        Err((field, problem)) => {
            let mut page = export_page(&console, &person, &key, form.without(field));
            page.problem = Some(format!("{field}: {problem}"));
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    let accept = match request.format {
        ExportFormat::Csv => "text/csv",
        _ => "application/x-ndjson",
    };
    let answer = console
        .node
        .post_download("/v1/audit/exports", &person.name, &request, accept)
        .await;
    match answer {
        Ok((content_type, bytes)) => {
            let name = format!(
                "auditlog-{}.{extension}",
                chrono::Utc::now().format("%Y%m%d-%H%M%S")
            );
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => {
            let mut page = export_page(&console, &person, &key, form);
            page.problem = Some(e.to_string());
            render(StatusCode::BAD_GATEWAY, &page)
        }
    }
}
