//! The partner-facing HTTP/JSON API under `/v1` (OpenAPI 3, the Dutch API Design Rules), served on
//! the node's own mutual-TLS listener beside gRPC, with the same identity from the certificate and
//! the same limits. Thin handlers only: authenticate, turn JSON into the service layer's types,
//! call it, turn the answer back. Decides, stores and audits nothing itself; no pupil id or
//! pseudonym is ever part of a path, a query string or a log line (they travel in POST bodies).
//!
//! # Layout
//! - [`front`]: the tower layer that hands `/v1` requests to this API before the gRPC stack.
//! - [`clock`]: `/v1/due-list`, `/v1/reports` (JSON or CSV) and `/v1/counts`.
//! - [`doc`]: the OpenAPI document, generated from the handlers and DTOs.
//! - [`problem`]: problem details for every error, and the extractors that produce them.
//! - [`version`]: the `API-Version` header on every answer.
//! - [`audit`]: `/v1/audit/...`: the FG's entries, export, access report, verification, proofs.
//! - [`cases`]: `/v1/cases`: open, list, close, accept and decline cases of case meetings.
//! - [`federation`]: `/v1/federated-queries`: ask every peer through the own node.
//! - [`signals`]: `/v1/signals`: push a JSON batch, list and search (pupils by pseudonym only).
//! - [`covenant`]: `/v1/covenant/matrix`: the covenant's matrix (Bijlage 3) for its parties and FGs.
//! - [`peers`]: `/v1/peers`: whether each configured peer node is up.

pub mod audit;
pub mod cases;
pub mod clock;
pub mod covenant;
pub mod doc;
pub mod federation;
pub mod front;
pub mod peers;
pub mod problem;
pub mod signals;
pub mod version;

use crate::limits::GateLayer;
use crate::service::{Caller, Service};
use crate::trace::TraceContext;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use problem::Problem;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The base path: the API's major version (/core/uri-version).
pub const BASE: &str = "/v1";

/// The largest request body of an operation that takes one, except a push.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares: the service layer and the gate in front of the listener.
pub struct RestState {
    pub service: Service,
    pub gate: GateLayer,
}

type Operation = (Method, &'static str, MethodRouter<Arc<RestState>>);

/// Every operation of the API: its method, its path under [`BASE`] (as in the OpenAPI document)
/// and its handler.
/// The router is built from this table and nothing else, so [`served`] is what the server answers.
fn operations() -> Vec<Operation> {
    use axum::extract::DefaultBodyLimit;
    vec![
        (Method::GET, "/openapi.json", get(doc::serve)),
        (
            Method::POST,
            "/signals",
            post(signals::push).layer(DefaultBodyLimit::max(signals::MAX_PUSH_BYTES)),
        ),
        (Method::GET, "/signals", get(signals::list)),
        (Method::POST, "/signals/search", post(signals::search)),
        (
            Method::POST,
            "/federated-queries",
            post(federation::federated_query),
        ),
        (Method::POST, "/cases", post(cases::open)),
        (Method::GET, "/cases", get(cases::list)),
        (Method::POST, "/cases/{caseId}/close", post(cases::close)),
        (Method::POST, "/cases/{caseId}/accept", post(cases::accept)),
        (
            Method::POST,
            "/cases/{caseId}/decline",
            post(cases::decline),
        ),
        (
            Method::POST,
            "/cases/{caseId}/offers",
            post(cases::record_offer),
        ),
        (Method::POST, "/due-list", post(clock::due_list)),
        (Method::POST, "/reports", post(clock::report)),
        (Method::POST, "/counts", post(clock::counts)),
        (Method::POST, "/audit/entries/search", post(audit::search)),
        (Method::POST, "/audit/exports", post(audit::export)),
        (
            Method::POST,
            "/audit/access-reports",
            post(audit::access_report),
        ),
        (Method::GET, "/audit/verification", get(audit::verify)),
        (Method::GET, "/audit/entries/{seq}/proof", get(audit::prove)),
        (Method::POST, "/pupil-lookups", post(clock::look_up_pupil)),
        (Method::POST, "/cases/search", post(cases::search)),
        (Method::GET, "/case-meetings", get(cases::meetings)),
        // The FG's console (issue 13): the matrix, the witnesses' checkpoints, the peers.
        (
            Method::GET,
            "/covenant/matrix",
            get(covenant::covenant_matrix),
        ),
        (
            Method::GET,
            "/audit/checkpoints/latest",
            get(audit::latest_checkpoint),
        ),
        (Method::GET, "/peers", get(peers::list)),
    ]
}

/// The method and full path of every operation the server answers (for the tests that hold the
/// OpenAPI document to it).
pub fn served() -> Vec<(Method, String)> {
    operations()
        .into_iter()
        .map(|(method, path, _)| (method, format!("{BASE}{path}")))
        .collect()
}

/// The API as an axum router: every operation of [`operations`], behind the gate (identity,
/// party, load, deadline), every answer stamped with its version and every error problem+json.
pub fn router(service: Service, gate: GateLayer) -> axum::Router {
    let state = Arc::new(RestState { service, gate });
    let mut api = axum::Router::new();
    for (_, path, handler) in operations() {
        api = api.route(path, handler);
    }
    axum::Router::new()
        .nest(BASE, api)
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .layer(axum::middleware::from_fn(version::stamp))
        .with_state(state)
}

async fn no_route() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no operation at this path; see /v1/openapi.json for the operations",
    )
}

/// The gate every request passes before a handler runs, as the gRPC services do: a caller
/// without an organisation in its certificate, one that is no party, and a request beyond the
/// node's limit are refused; a request is cut off at the node's deadline.
async fn admit(State(state): State<Arc<RestState>>, request: Request, next: Next) -> Response {
    let permit = match state.gate.admit_request(request.extensions()) {
        Ok(permit) => permit,
        Err(status) => return Problem::from_status(&status).into_response(),
    };
    let limits = state.service.node().gate.limits();
    let deadline = if request.method() == Method::POST && request.uri().path() == "/v1/signals" {
        Duration::from_secs(limits.push_timeout_secs)
    } else {
        limits.request_timeout()
    };
    let answer = tokio::time::timeout(deadline, next.run(request)).await;
    drop(permit);
    answer.unwrap_or_else(|_| {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request took longer than the node's deadline of {} s",
                deadline.as_secs()
            ),
        )
        .into_response()
    })
}

/// The header in which a partner's system may state who is acting (a person or system of its
/// own organisation), for the audit log; as the gRPC `pactgate-actor` metadata.
pub const ACTOR_HEADER: &str = "pactgate-actor";

/// The service layer's [`Caller`]: the organisation from the client certificate of the
/// connection, the acting person or system it states ([`ACTOR_HEADER`], refused if it could hold
/// a pupil id) and the W3C trace (`traceparent`) the request continues.
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let organisation = parts
            .extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .and_then(|certs| crate::identity::organisation_of(certs.first()?.as_ref()).ok())
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "the client certificate names no organisation (OIN and name)",
                )
            })?;
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let trace = TraceContext::continuing(header(crate::trace::TRACEPARENT).as_deref());
        let caller = Caller::new(organisation, trace).with_actor(
            "the Pactgate-Actor header",
            &header(ACTOR_HEADER).unwrap_or_default(),
        )?;
        Ok(Self(caller))
    }
}
