//! The one error type of the service layer. Each variant is a kind a transport maps once (gRPC
//! to a `Status` code, REST to a problem+json status); its message is meant for the caller and
//! never holds internals (sled, I/O, task errors are logged here and replaced) or a pupil id.

use crate::pseudonymiser::{PseudonymiseError, Refusal};

/// Why an operation of the service layer did not complete. `Display` is the caller's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The caller's certificate names no usable organisation.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this; `reason` names the rule or part that did not match.
    #[error("{reason}")]
    PermissionDenied { reason: String },
    /// A field of the request is malformed; `field` names it (the message names it too).
    #[error("{message}")]
    InvalidArgument { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// A limit or quota is reached; try again later or with less.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request is valid but the node's state does not allow it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A position or size beyond what exists (yet).
    #[error("{0}")]
    OutOfRange(String),
    /// The caller went quiet for too long.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Something the node depends on cannot be reached, or the node is stopping.
    #[error("{0}")]
    Unavailable(String),
    /// The node failed; the detail is in its log, never in this message.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// A refusal by rule, with the house prefix "denied: ".
    pub fn denied(reason: impl std::fmt::Display) -> Self {
        Self::PermissionDenied {
            reason: format!("denied: {reason}"),
        }
    }

    /// A refusal whose text is given whole.
    pub fn permission(reason: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason: reason.into(),
        }
    }

    /// A malformed field; `message` is the whole text and names the field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, Self::InvalidArgument { .. })
    }
}

impl From<crate::signal::FieldError> for ServiceError {
    fn from(e: crate::signal::FieldError) -> Self {
        Self::invalid(e.field, e.to_string())
    }
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::Internal(
            "the node could not complete the request in its data store; nothing was acknowledged"
                .into(),
        )
    }
}

impl From<crate::audit::AuditError> for ServiceError {
    fn from(e: crate::audit::AuditError) -> Self {
        tracing::error!(error = %e, "audit write failed");
        Self::Internal("the node could not write its audit log, so it refuses the request".into())
    }
}

impl From<crate::cases::CaseError> for ServiceError {
    fn from(e: crate::cases::CaseError) -> Self {
        tracing::error!(error = %e, "case store failure");
        Self::Internal("the node could not read or store the case; nothing was acknowledged".into())
    }
}

impl From<crate::cases::OfferError> for ServiceError {
    fn from(e: crate::cases::OfferError) -> Self {
        use crate::cases::{OfferError, OfferRefusal as R};
        match e {
            OfferError::Refused(R::Invalid(m)) => {
                // The message starts with the field it names ("offer.kind: ...").
                let field = m
                    .split([':', ' '])
                    .next()
                    .filter(|f| f.starts_with("offer."))
                    .unwrap_or("offer")
                    .to_owned();
                Self::invalid(field, m)
            }
            OfferError::Refused(R::Denied(m)) => Self::denied(m),
            OfferError::Refused(R::State(m)) => Self::FailedPrecondition(m),
            OfferError::Refused(R::NotFound(m)) => Self::NotFound(m),
            OfferError::Store(e) => e.into(),
        }
    }
}

impl From<tokio::task::JoinError> for ServiceError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "blocking task failed");
        Self::Internal(
            "the node failed while handling the request; nothing was acknowledged".into(),
        )
    }
}

impl From<crate::limits::HeavyError> for ServiceError {
    fn from(e: crate::limits::HeavyError) -> Self {
        match e {
            crate::limits::HeavyError::ShuttingDown => Self::Unavailable(e.to_string()),
            crate::limits::HeavyError::Failed => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::limits::PushesFull> for ServiceError {
    fn from(e: crate::limits::PushesFull) -> Self {
        Self::ResourceExhausted(e.to_string())
    }
}

/// A failure of the pseudonymisation service: its refusals (quota, not a party) keep their kind
/// and reason; an answer that fails its proof is reported as such.
impl From<PseudonymiseError> for ServiceError {
    fn from(e: PseudonymiseError) -> Self {
        tracing::warn!(error = %e, "pseudonymisation failed");
        let unfinished = "; the request was not completed";
        if let Some((kind, reason)) = e.refusal() {
            let message = format!("the pseudonymisation service refused: {reason}{unfinished}");
            return match kind {
                Refusal::Quota => Self::ResourceExhausted(message),
                Refusal::NotAParty => Self::permission(message),
                Refusal::Invalid => Self::invalid("", message),
                Refusal::NotFound => Self::NotFound(message),
            };
        }
        if e.is_unreachable() {
            return Self::Unavailable(format!(
                "the pseudonymisation service cannot be reached{unfinished}"
            ));
        }
        Self::Internal(format!("{e}{unfinished}"))
    }
}
