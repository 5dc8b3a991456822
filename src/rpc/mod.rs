//! The gRPC layer, a transport over [`crate::service`]: the services' handlers (authenticate,
//! convert, call the service, convert back), the conversions between proto and domain types
//! ([`convert`]), and the one place that turns a [`ServiceError`] into a `tonic::Status`
//! ([`error`]). Beside it on the same listener, [`witness_http`] speaks
//! c2sp.org/tlog-witness over plain HTTP, with the spec's status codes.

pub mod audit;
pub mod backup;
pub mod cases;
pub mod clock;
pub mod convert;
pub mod error;
pub mod exchange;
pub mod federation;
pub mod intake;
pub mod witness_http;

use crate::identity::{self, Organisation};
use crate::service::{Caller, ServiceError};
use tonic::Status;

/// The organisation behind a request, or UNAUTHENTICATED if its certificate names none.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Organisation, Status> {
    identity::caller(request).map_err(|e| {
        tracing::warn!(error = %e, "request without a usable client identity");
        Status::unauthenticated(format!("client certificate not usable: {e}"))
    })
}

/// The service layer's caller of a request: the organisation from its certificate, the actor it
/// states in the `pactgate-actor` metadata (checked by [`check_metadata`]) and its trace.
pub fn service_caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    let org = caller(request)?;
    let trace = crate::trace::TraceContext::from_metadata(request.metadata());
    Ok(Caller::new(org, trace).with_actor(
        "the pactgate-actor metadata",
        &stated_actor(request.metadata()),
    )?)
}

/// Turns a store failure into a status. The detail is logged, not sent.
pub fn store_status(e: crate::store::StoreError) -> Status {
    ServiceError::from(e).into()
}

/// Turns a panicked or cancelled blocking task into a status.
pub fn task_status(e: tokio::task::JoinError) -> Status {
    ServiceError::from(e).into()
}

/// Turns a failure of the pseudonymisation service into a status.
pub fn pseudonymiser_status(e: crate::pseudonymiser::PseudonymiseError) -> Status {
    ServiceError::from(e).into()
}

/// Turns a case store failure into a status.
pub fn case_status(e: crate::cases::CaseError) -> Status {
    ServiceError::from(e).into()
}

/// Turns an audit failure into a status; the request fails with it.
pub fn audit_status(e: crate::audit::AuditError) -> Status {
    ServiceError::from(e).into()
}

/// [`crate::service::refuse_id_like`] for the handlers still in this layer.
pub fn refuse_id_like(field: &str, text: &str) -> Result<(), Status> {
    Ok(crate::service::refuse_id_like(field, text)?)
}

/// [`crate::service::refuse_id_like_case_id`] for the handlers still in this layer.
pub fn refuse_id_like_case_id(field: &str, text: &str) -> Result<(), Status> {
    Ok(crate::service::refuse_id_like_case_id(field, text)?)
}

/// [`crate::service::refuse_non_oin`] for the handlers still in this layer.
pub fn refuse_non_oin(field: &str, text: &str) -> Result<(), Status> {
    Ok(crate::service::refuse_non_oin(field, text)?)
}

/// A check every request passes before its handler runs: a stated actor (the
/// `pactgate-actor` metadata) that could carry a pupil id is refused (INVALID_ARGUMENT).
#[allow(clippy::result_large_err)]
pub fn check_metadata(request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
    if let Some(value) = request.metadata().get(ACTOR_METADATA) {
        refuse_id_like(
            "the pactgate-actor metadata",
            &String::from_utf8_lossy(value.as_bytes()),
        )?;
    }
    Ok(request)
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
