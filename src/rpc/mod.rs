//! The gRPC layer: the services' handlers, the conversions between proto and domain types, and
//! the one place that turns errors into `tonic::Status` with messages a person understands and
//! no internals or pupil ids. Beside it on the same listener, [`witness_http`] speaks
//! c2sp.org/tlog-witness over plain HTTP, with the spec's status codes.

pub mod audit;
pub mod backup;
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

/// Turns a failure of the pseudonymisation service into a status: its refusals (quota, not a
/// party) keep their code and reason; an answer that fails its proof is reported as such.
pub fn pseudonymiser_status(e: crate::pseudonymiser::PseudonymiseError) -> Status {
    use crate::pseudonymiser::PseudonymiseError as E;
    tracing::warn!(error = %e, "pseudonymisation failed");
    let unfinished = "; the request was not completed";
    match e {
        E::Refused(s)
            if matches!(
                s.code(),
                tonic::Code::ResourceExhausted
                    | tonic::Code::PermissionDenied
                    | tonic::Code::InvalidArgument
                    | tonic::Code::NotFound
            ) =>
        {
            Status::new(
                s.code(),
                format!(
                    "the pseudonymisation service refused: {}{unfinished}",
                    s.message()
                ),
            )
        }
        E::Refused(_) | E::Connect(_) => Status::unavailable(format!(
            "the pseudonymisation service cannot be reached{unfinished}"
        )),
        E::Proof(_) | E::Malformed(_) => Status::internal(format!("{e}{unfinished}")),
        E::NoPublicKey | E::UnknownVersion(_) | E::Task => {
            Status::internal(format!("{e}{unfinished}"))
        }
    }
}

/// Turns a case store failure into a status.
pub fn case_status(e: crate::cases::CaseError) -> Status {
    tracing::error!(error = %e, "case store failure");
    Status::internal("the node could not read or store the case; nothing was acknowledged")
}

/// Refuses caller text that holds a number that could be a pupil id (nine or more digits in a
/// row, in any script, counted across separators), naming the field and never echoing the text:
/// such text is never stored, shared or logged.
pub fn refuse_id_like(field: &str, text: &str) -> Result<(), Status> {
    if crate::pseudonym::looks_like_id(text) {
        return Err(Status::invalid_argument(format!(
            "{field} holds nine or more digits in a row (counted across dots, dashes, spaces and \
             other separators, in any script), which could be a BSN or onderwijsnummer; never put \
             a pupil's number in {field}"
        )));
    }
    Ok(())
}

/// Refuses a case id that could carry a pupil id: a case id's hex digits may hold no valid BSN
/// or onderwijsnummer, and any other text is judged as free text ([`refuse_id_like`]).
pub fn refuse_id_like_case_id(field: &str, text: &str) -> Result<(), Status> {
    if crate::cases::is_case_id(text) && !crate::pseudonym::holds_pupil_id_digits(text) {
        return Ok(());
    }
    if crate::pseudonym::holds_pupil_id_digits(text) {
        return Err(Status::invalid_argument(format!(
            "{field} holds nine digits that pass the BSN or onderwijsnummer check; case ids are \
             made by the lead's node and never carry a pupil's number"
        )));
    }
    refuse_id_like(field, text)
}

/// Refuses an OIN field that is not exactly twenty digits, never echoing it.
pub fn refuse_non_oin(field: &str, text: &str) -> Result<(), Status> {
    if crate::pseudonym::is_oin(text) {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "{field} is not an OIN: an OIN is exactly twenty digits and nothing else"
    )))
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
