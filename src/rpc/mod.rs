//! The gRPC layer: the services' handlers, the conversions between proto and domain types, and
//! the one place that turns errors into `tonic::Status` with messages a person understands and
//! no internals or pupil ids. Beside it on the same listener, [`witness_http`] speaks
//! c2sp.org/tlog-witness over plain HTTP, with the spec's status codes.

pub mod audit;
pub mod cases;
pub mod clock;
pub mod convert;
pub mod exchange;
pub mod federation;
pub mod intake;
pub mod witness_http;

use crate::identity::{self, Organisation};
use tonic::Status;

/// The organisation behind a request, or UNAUTHENTICATED if its certificate names none.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Organisation, Status> {
    identity::caller(request).map_err(|e| {
        tracing::warn!(error = %e, "request without a usable client identity");
        Status::unauthenticated(format!("client certificate not usable: {e}"))
    })
}

/// Turns a store failure into a status. The detail is logged here, not sent.
pub fn store_status(e: crate::store::StoreError) -> Status {
    tracing::error!(error = %e, "store failure");
    Status::internal(
        "the node could not complete the request in its data store; nothing was acknowledged",
    )
}

/// Turns a panicked or cancelled blocking task into a status.
pub fn task_status(e: tokio::task::JoinError) -> Status {
    tracing::error!(error = %e, "blocking task failed");
    Status::internal("the node failed while handling the request; nothing was acknowledged")
}

/// Turns a case store failure into a status.
pub fn case_status(e: crate::cases::CaseError) -> Status {
    tracing::error!(error = %e, "case store failure");
    Status::internal("the node could not read or store the case; nothing was acknowledged")
}

/// The metadata key in which a partner's system may state who is acting (a person or system of
/// its own organisation), for the audit log.
pub const ACTOR_METADATA: &str = "pactgate-actor";

/// The acting person or system as the caller states it, or "".
pub fn stated_actor(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get(ACTOR_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
        .unwrap_or_default()
}
