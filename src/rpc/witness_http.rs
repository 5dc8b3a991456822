//! c2sp.org/tlog-witness over HTTP, the serving half: `POST /add-checkpoint` on the node's own
//! TLS port for the logs it is configured for (the submitting half is [`crate::witness_client`]).
//! Sees sizes and hashes only, never an entry. Invariant: a log is witnessed only under a
//! verifier key from configuration.

use crate::audit::{AddCheckpoint, WitnessError};
use crate::service::Service;
pub use crate::witness_client::{SubmitError, WitnessTarget, ADD_CHECKPOINT, TLOG_SIZE};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The largest request body: the old size line, 63 proof lines and a checkpoint note.
const MAX_BODY: usize = 80 * 1024;

/// The routes this node serves as a witness, to be merged into its gRPC server.
pub fn routes(service: Service) -> axum::Router {
    axum::Router::new()
        .route(ADD_CHECKPOINT, axum::routing::post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

fn text(status: u16, content_type: &'static str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The answer to a refusal: the spec's status; on 409 for an old size, the held size as
/// `text/x.tlog.size`; else the reason in plain text.
fn refusal(e: &WitnessError) -> Response {
    match e {
        WitnessError::Conflict { held, .. } => text(409, TLOG_SIZE, format!("{held}\n")),
        e => text(
            e.http_status(),
            "text/plain; charset=utf-8",
            format!("{e}\n"),
        ),
    }
}

async fn add_checkpoint(State(service): State<Service>, body: Bytes) -> Response {
    let request = std::str::from_utf8(&body)
        .map_err(|_| WitnessError::Malformed("the body is not UTF-8"))
        .and_then(AddCheckpoint::parse);
    let request = match request {
        Ok(r) => r,
        Err(e) => return refusal(&e),
    };
    let result = tokio::task::spawn_blocking(move || service.add_checkpoint(request)).await;
    match result {
        Ok(Ok(cosignature)) => text(200, "text/plain; charset=utf-8", cosignature.line()),
        Ok(Err(e)) => {
            tracing::info!(witness.status = e.http_status(), reason = %e, "checkpoint not cosigned");
            refusal(&e)
        }
        Err(e) => {
            tracing::error!(error = %e, "witness task failed");
            text(
                500,
                "text/plain; charset=utf-8",
                "the witness failed\n".into(),
            )
        }
    }
}
