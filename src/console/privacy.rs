//! The FG's Privacy pages: the node's audit log with filters and paging
//! (`POST /v1/audit/entries/search`), "verify the whole log" with the witnesses
//! (`GET /v1/audit/verification`) and the access report for a BSN (`POST /v1/audit/access-reports`,
//! a CSRF form; the BSN goes only into that body and is never shown, logged or kept).

use super::pages::{check_form, render, FormKey, Layout};
use super::person::Person;
use super::Console;
use crate::rest::audit::{
    AccessReport, AccessReportRequest, AuditDecision, AuditEntry, AuditFilter, EntryPage,
    EntrySearch, Verification,
};
use askama::Template;
use axum::extract::{Query, State};
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

#[derive(Template)]
#[template(path = "console/controle.html")]
struct VerifyPage {
    layout: Layout,
    verification: Option<Verification>,
    problem: Option<String>,
}

/// `GET /privacy/controle`: verify the whole log, with the witnesses.
pub async fn verify(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
) -> Response {
    let answer = console
        .node
        .get::<Verification>("/v1/audit/verification", &person.name)
        .await;
    let layout = Layout::new(&console, "Controle van het auditlog", "controle", &person);
    let (status, page) = match answer {
        Ok(v) => (
            StatusCode::OK,
            VerifyPage {
                layout,
                verification: Some(v),
                problem: None,
            },
        ),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            VerifyPage {
                layout,
                verification: None,
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
